"""Prometheus helpers: the exposition endpoint and metric constructors shared by services.

Metric names are ``podium_<what>_<unit>``. Every service exports the HTTP metrics below
(its own process, its own ``/metrics``), so dashboards and alerts work the same everywhere.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from shared.pool_metrics import observe_pools

LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
# Stages of a score's freshness (ingest → ranker → change feed → readers), whose budget is
# tens of milliseconds: finer where LATENCY_BUCKETS_S jumps 10 → 25 → 50 ms
FRESHNESS_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip

HTTP_REQUESTS = Counter(
    "podium_http_requests_total",
    "HTTP requests handled, by service, route template, method and status.",
    ["service", "route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "podium_http_request_duration_seconds",
    "HTTP request latency, by service and route template.",
    ["service", "route"],
    buckets=LATENCY_BUCKETS_S,
)
HTTP_IN_FLIGHT = Gauge(
    "podium_http_requests_in_flight", "HTTP requests being handled.", ["service"]
)
DEPENDENCY_UP = Gauge(
    "podium_dependency_up",
    "1 when the last readiness probe of a dependency succeeded, else 0.",
    ["service", "dependency"],
)


async def metrics_endpoint(request: Request) -> Response:
    """Serve every registered metric in the Prometheus text format."""
    resources = getattr(request.app.state, "resources", None)
    if resources is not None:
        observe_pools(getattr(request.app.state, "service_name", "podium"), resources)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
