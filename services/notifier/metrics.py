"""The notifier's Prometheus metrics (exported by the shared ``/metrics`` route)."""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterator, Sequence

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

# fine at the low end: the targets are 50 ms idle and 150-300 ms under load
CHANGE_AGE_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15)
CHANGE_AGE_BUCKETS_S += (0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BatchHistogram(Collector):
    """A histogram that takes ``count`` equal observations in one call.

    ``prometheus_client.Histogram.observe`` is one observation per call (two locked
    increments, ~1.5 µs): once per socket of a 10,000-client fan-out that is 15 ms of the
    event loop per update. The fan-out writes its sockets in a tight loop, so it observes
    one age per chunk of sockets instead (:data:`OBSERVE_EVERY`). Updated from the event
    loop only; a scrape reads a copy of the counts.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets_s: Sequence[float],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._bounds = [*(float(bound) for bound in buckets_s), math.inf]
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float, count: int = 1) -> None:
        """Record ``count`` observations of ``value``."""
        self._counts[bisect.bisect_left(self._bounds, value)] += count
        self._sum += value * count

    def collect(self) -> Iterator[Metric]:
        """The histogram as Prometheus exposes it (cumulative buckets, sum, count)."""
        counts, total = list(self._counts), 0
        buckets: list[tuple[str, float]] = []
        for bound, count in zip(self._bounds, counts, strict=True):
            total += count
            buckets.append(("+Inf" if math.isinf(bound) else repr(bound), total))
        yield HistogramMetricFamily(
            self._name, self._documentation, buckets=buckets, sum_value=self._sum
        )

    def describe(self) -> Iterator[Metric]:
        """The family without samples (what the registry checks names with)."""
        yield HistogramMetricFamily(self._name, self._documentation)


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
CHANGE_AGE = BatchHistogram(
    "podium_notifier_change_age_seconds",
    "Age of a change when the update it caused was written to a client's socket: from the"
    " change message's emitted_at (the ranker, after Redis was written) to the write, one"
    " observation per update frame.",
    CHANGE_AGE_BUCKETS_S,
)
# sockets written between two clock reads of the fan-out (each observation stands for them)
OBSERVE_EVERY = 64
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


@functools.cache
def messages_sent(kind: str) -> Counter:
    """The labelled child of ``MESSAGES_SENT`` (looked up once per kind, not per send)."""
    return MESSAGES_SENT.labels(kind)
