"""The query service's own Prometheus metrics (HTTP metrics come from the shared edge)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.metrics import FRESHNESS_BUCKETS_S

PAGE_CACHE = Counter(
    "podium_query_page_cache_total",
    "Top-page micro-cache lookups: hit, miss, or stale (served while Redis was unavailable).",
    ["result"],
)
PAGE_CACHE_HIT = PAGE_CACHE.labels("hit")
PAGE_CACHE_MISS = PAGE_CACHE.labels("miss")
PAGE_CACHE_STALE = PAGE_CACHE.labels("stale")

PAGE_CACHE_INVALIDATIONS = Counter(
    "podium_query_page_cache_invalidations_total",
    "Competitions whose cached pages were dropped on a change message.",
)
CHANGE_LAG = Histogram(
    "podium_query_change_lag_seconds",
    "From a change message's emitted_at (the ranker, after its batch is in PostgreSQL and"
    " Redis) to its cached pages being retired here: the query stage of a score's freshness.",
    buckets=FRESHNESS_BUCKETS_S,
)

REBUILDS = Counter(
    "podium_query_rebuilds_total",
    "Leaderboards rebuilt from PostgreSQL because Redis had lost them, by outcome.",
    ["outcome"],
)

REDIS_UNAVAILABLE = Counter(
    "podium_query_redis_unavailable_total",
    "Reads answered without Redis (timeout, connection error or open circuit breaker).",
    ["reason"],
)
