"""The ingest service's own metrics (HTTP metrics come from the shared middleware)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.metrics import LATENCY_BUCKETS_S

PRODUCE_LATENCY = Histogram(
    "podium_ingest_produce_duration_seconds",
    "Time from handing records to the producer to the broker's acknowledgement of all.",
    ["outcome"],
    buckets=LATENCY_BUCKETS_S,
)
EVENTS_ACCEPTED = Counter(
    "podium_ingest_events_accepted_total", "Score events acknowledged by the broker."
)
EVENTS_REJECTED = Counter(
    "podium_ingest_events_rejected_total", "Score events refused, by reason.", ["reason"]
)
CONTROL_EVENTS = Counter(
    "podium_ingest_control_events_total", "Admin control events published, by action.", ["action"]
)
