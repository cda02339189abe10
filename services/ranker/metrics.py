"""The ranker's Prometheus metrics (served on ``/metrics`` at ``PODIUM_RANKER_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import LATENCY_BUCKETS_S

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
    "Time to apply one batch (PostgreSQL, Redis, change messages), retries included.",
    buckets=LATENCY_BUCKETS_S,
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
