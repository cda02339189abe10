"""The notifier's Prometheus metrics (exported by the shared ``/metrics`` route)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FANOUT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONNECTIONS = Gauge("podium_notifier_connections", "Open leaderboard WebSocket connections.")
MESSAGES_SENT = Counter(
    "podium_notifier_messages_sent_total",
    "WebSocket messages sent to clients, by type (snapshot, update, error).",
    ["type"],
)
UPDATES_DROPPED = Counter(
    "podium_notifier_updates_dropped_total",
    "Intermediate states never sent because a newer one replaced them, by cause: "
    "`rate` (coalesced by PODIUM_NOTIFY_MAX_HZ) or `slow` (the client was still taking the "
    "previous message).",
    ["cause"],
)
CLOSES = Counter(
    "podium_notifier_closes_total",
    "WebSocket connections ended, by reason (client, slow, capacity, unauthenticated, "
    "forbidden, invalid, not_found, flooding, too_large, unavailable, shutdown).",
    ["reason"],
)
FANOUT_LATENCY = Histogram(
    "podium_notifier_fanout_latency_seconds",
    "From a change message's emitted_at to the send of the update it caused.",
    buckets=FANOUT_BUCKETS_S,
)
CHANGES_APPLIED = Counter(
    "podium_notifier_changes_total",
    "Change messages for competitions with local subscribers, by outcome (applied, stale).",
    ["outcome"],
)
REBUILD_RESYNCS = Counter(
    "podium_notifier_rebuild_resyncs_total",
    "Rooms whose every client was sent a fresh snapshot because the ranker announced the"
    " competition as rebuilt (Redis had lost some of it).",
)
