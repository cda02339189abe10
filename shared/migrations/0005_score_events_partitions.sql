-- Issue #18: a bounded system of record. score_events becomes range-partitioned by event_ts
-- (weekly partitions, created and dropped by shared/event_partitions.py: the ranker at
-- start-up, `podium prune` daily), so rows older than the dedup horizon go with one DROP TABLE
-- instead of a DELETE and a vacuum.
--
-- A unique constraint on a partitioned table must include the partition key, so the key is
-- (event_id, event_ts). Dedup stays by event_id alone: the ranker looks every event id up
-- across all partitions under its competition locks (a retry of an event without ts carries a
-- new ts, so (event_id, event_ts) alone would count it twice); the key only makes a replayed
-- insert of the same row a no-op.
--
-- Existing rows are copied into the DEFAULT partition (it holds whatever no week partition
-- does); the first maintenance run moves the recent ones into their weeks and deletes those
-- beyond the horizon. The copy is one INSERT ... SELECT in the migration's transaction: on a
-- large table it takes as long as copying the table and needs its size again on disk.
ALTER TABLE score_events RENAME TO score_events_unpartitioned;
ALTER INDEX score_events_pkey RENAME TO score_events_unpartitioned_pkey;
ALTER INDEX score_events_competition_user RENAME TO score_events_unpartitioned_competition_user;

CREATE TABLE score_events (
    event_id        text NOT NULL,
    competition_id  text NOT NULL,
    user_id         text NOT NULL,
    value           double precision NOT NULL,
    event_ts        timestamptz NOT NULL,
    received_at     timestamptz NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, event_ts)
) PARTITION BY RANGE (event_ts);
CREATE INDEX score_events_competition_user ON score_events (competition_id, user_id);
CREATE TABLE score_events_default PARTITION OF score_events DEFAULT;

INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts, received_at,
                          metadata, applied_at)
SELECT event_id, competition_id, user_id, value, event_ts, received_at, metadata, applied_at
FROM score_events_unpartitioned;
DROP TABLE score_events_unpartitioned;

-- How far event rows have been dropped: the ranker dead-letters any event older than this
-- (its row may be gone, so a duplicate could not be recognised). One row; 1970 = nothing
-- pruned (earlier event times are refused anyway).
CREATE TABLE score_events_pruned (
    only_row       boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    pruned_before  timestamptz NOT NULL
);
INSERT INTO score_events_pruned (pruned_before) VALUES ('1970-01-01 00:00:00+00');
