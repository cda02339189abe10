"""The ranker's Prometheus metrics (served on ``/metrics`` at ``PODIUM_RANKER_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import FRESHNESS_BUCKETS_S, LATENCY_BUCKETS_S

BATCH_SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)

EVENTS_APPLIED = Counter(
    "podium_ranker_events_applied_total",
    "Score and control events applied to PostgreSQL for the first time.",
    ["kind"],
)
DUPLICATES_DROPPED = Counter(
    "podium_ranker_duplicates_dropped_total",
    "Events whose event_id was already applied (replays and producer retries).",
)
DEAD_LETTERS = Counter(
    "podium_ranker_dead_letters_total",
    "Events sent to the dead-letter topic, by reason.",
    ["reason"],
)
BATCH_SIZE = Histogram(
    "podium_ranker_batch_size", "Records per applied batch.", buckets=BATCH_SIZE_BUCKETS
)
APPLY_LATENCY = Histogram(
    "podium_ranker_apply_duration_seconds",
    "Time to apply one batch (PostgreSQL, Redis, change messages handed to the producer),"
    " retries included; the broker's acks follow in the delivered stage, beside the next batch.",
    buckets=LATENCY_BUCKETS_S,
)
BATCH_STAGES = (
    "lock",
    "read",
    "plan",
    "versions",
    "write",
    "write_postgresql",
    "write_redis",
    "commit",
    "heal",
    "publish",
    "delivered",
    "offsets",
)
BATCH_STAGE = Histogram(
    "podium_ranker_batch_stage_seconds",
    "Time of one stage of one batch attempt: lock (a pooled connection, BEGIN, index scans"
    " preferred, the competitions' rows locked), read (known ids, bans, standings), plan,"
    " versions (each competition's Redis writes built, the standings versions bumped), write"
    " (PostgreSQL rows and the Redis pipeline, concurrently; each alone: write_postgresql,"
    " write_redis), commit, heal (rebuilding boards Redis refused), publish (change"
    " messages and dead letters handed to the producer), delivered (until the broker"
    " acknowledged them, acks=all) and offsets (the batch's offsets committed). Where a"
    " batch's time goes, stage by stage; delivered and offsets overlap the next batch.",
    ["stage"],
    buckets=FRESHNESS_BUCKETS_S,
)
BATCH_STAGE_OF = {_stage: BATCH_STAGE.labels(_stage) for _stage in BATCH_STAGES}
"""Each stage's histogram child, looked up once per process (a batch observes each)."""
EVENT_AGE_BUCKETS_S = (
    0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300
)  # fmt: skip
EVENT_AGE = Histogram(
    "podium_ranker_event_age_seconds",
    "Age of a batch's events once applied (PostgreSQL committed, Redis written, changes"
    " published): now minus the received_at ingest stamped, for the batch's oldest and newest"
    " event (edge); the clocks of the ingest and ranker hosts must agree.",
    ["edge"],
    buckets=EVENT_AGE_BUCKETS_S,
)
BATCH_RETRIES = Counter(
    "podium_ranker_batch_retries_total",
    "Failed batch attempts that were retried (PostgreSQL, Redis or Kafka unavailable).",
)
REBUILDS = Counter(
    "podium_ranker_rebuilds_total",
    "Leaderboards rebuilt from PostgreSQL because Redis had lost them.",
)
CONSUMER_LAG_S = Gauge(
    "podium_ranker_consumer_lag_seconds",
    "How long the partition has had records waiting (0 when caught up), by partition.",
    ["partition"],
)
CONSUMER_LAG_RECORDS = Gauge(
    "podium_ranker_consumer_lag_records",
    "Records between the committed offset and the high watermark of the last fetch, by"
    " partition (not from end_offsets(), which the dev broker answers wrongly).",
    ["partition"],
)
COMMITTED_OFFSET = Gauge(
    "podium_ranker_committed_offset",
    "The last offset committed by this process, by partition.",
    ["partition"],
)

# --- issue #17: boards whose Redis copy disagrees with PostgreSQL's standings version -------
STALE_REASONS = ("missing", "behind", "ahead")
STALE_FINDERS = ("batch", "reconciler")
STALE_BOARDS = Counter(
    "podium_ranker_stale_boards_total",
    "Leaderboards whose Redis copy was found not to reflect PostgreSQL's standings version, and"
    " rebuilt, by reason (missing, behind: Redis lost writes, ahead: Redis kept writes"
    " PostgreSQL does not have) and by who found them (batch: a refused write; reconciler).",
    ["reason", "found_by"],
)
for _reason in STALE_REASONS:  # every series exists from the start, so alerts can use them
    for _finder in STALE_FINDERS:
        STALE_BOARDS.labels(_reason, _finder)
STALE_BOARD_SECONDS = Histogram(
    "podium_ranker_stale_board_seconds",
    "Estimated time a board the reconciler healed had been stale, up to its rebuild: after a"
    " new Redis server identity, Redis's uptime at detection plus the heal time; otherwise the"
    " time since the previous pass began plus the heal time (an upper bound).",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
)
RECONCILE_PASS_SECONDS = Histogram(
    "podium_ranker_reconcile_pass_duration_seconds",
    "Time of one reconciler pass: every competition's built marker compared with PostgreSQL,"
    " the stale ones rebuilt and announced.",
    buckets=LATENCY_BUCKETS_S,
)
RECONCILE_PASSES = Counter(
    "podium_ranker_reconcile_passes_total",
    "Reconciler passes by trigger (redis_identity: Redis server changed or this process"
    " started; interval; command: `podium reconcile`) and outcome (done; skipped: another"
    " ranker was reconciling; failed).",
    ["trigger", "outcome"],
)
for _trigger in ("redis_identity", "interval", "command"):
    for _outcome in ("done", "skipped", "failed"):
        RECONCILE_PASSES.labels(_trigger, _outcome)

# --- what the fetcher does with fetched records: a ranker that fetches but applies nothing ---
FETCH_OUTCOMES = ("accepted", "inactive_partition", "behind_read_offset", "rewound", "gap")
FETCHED_RECORDS = Counter(
    "podium_ranker_fetched_records_total",
    "Records the fetcher got from the broker, by outcome: accepted into a batch; dropped because"
    " the partition was paused or revoked (inactive_partition) or the record was behind the"
    " partition's read offset (behind_read_offset); dropped while a rebalance moved the group"
    " on, then fetched again from the committed offset (rewound); held back because the fetch"
    " skipped offsets before them, then fetched again from the first missing one (gap; see"
    " PODIUM_KAFKA_GAP_WAIT_S). Anything but accepted growing"
    " steadily means records are fetched and never applied.",
    ["outcome"],
)
for _outcome in FETCH_OUTCOMES:
    FETCHED_RECORDS.labels(_outcome)
FETCH_GAPS = Counter(
    "podium_ranker_fetch_gaps_total",
    "Fetches whose records of a partition did not start at the offset the ranker expected, by"
    " what it did: fetched the partition again from the missing offset (refetched), or, after"
    " PODIUM_KAFKA_GAP_WAIT_S of the same gap, took the records after it (accepted: the"
    " offsets in between hold nothing, e.g. transaction markers). Accepted gaps on a topic"
    " written only by ingest mean records the broker acknowledged were never readable.",
    ["outcome"],
)
for _outcome in ("refetched", "accepted"):
    FETCH_GAPS.labels(_outcome)
PARTITIONS = Gauge(
    "podium_ranker_partitions",
    "Partitions of this process by state: assigned (by the group), active (fetched and"
    " handed to the ranker), paused (faust paused them: a rebalance or flow control).",
    ["state"],
)
BATCH_IN_FLIGHT_S = Gauge(
    "podium_ranker_batch_in_flight_seconds",
    "How long the batch being applied has been in flight (0 when none is): a stuck batch"
    " grows without bound while the lag grows.",
)
