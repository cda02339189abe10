-- Issue #15: how equal scores are ranked (shared/schemas/competition.py:RankStyle). Existing
-- competitions keep today's behaviour, `unique`. The style is applied when reading, never
-- stored in a standing, so a PATCH changes every read and push at once (within the caches'
-- TTLs) without rewriting anything.
ALTER TABLE competitions
    ADD COLUMN rank_style text NOT NULL DEFAULT 'unique'
    CHECK (rank_style IN ('unique', 'standard', 'dense'));
