-- Issue #17: per competition, how many standing-changing batches PostgreSQL has applied.
-- The ranker bumps it in the batch's transaction, under the competition's advisory lock, for
-- every competition the batch writes to Redis, and the Redis write script moves the built
-- marker from the old value to the new one only when Redis holds the old one. A Redis that
-- came back from an older snapshot (or a promoted replica that missed writes) therefore
-- holds a smaller number than this table: the ranker and the reconciler see that and rebuild
-- the competition. A missing row means 0 (nothing applied yet).
--
-- One small row per competition, updated by every batch: a low fill factor leaves room on
-- the page for HOT updates (no index entry changes, so no index bloat).
CREATE TABLE standings_versions (
    competition_id  text PRIMARY KEY,
    version         bigint NOT NULL CHECK (version >= 0)
) WITH (fillfactor = 50);

-- Competitions that already have standings start at 0, so the reconciler checks them too;
-- their built markers (a timestamp before this migration) never equal a version, so each is
-- rebuilt once after the upgrade.
INSERT INTO standings_versions (competition_id, version)
SELECT DISTINCT competition_id, 0 FROM standings;
