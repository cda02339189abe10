"""``/health/live``, ``/health/ready`` and ``/metrics`` for every service.

A service registers its readiness checks on ``app.state.readiness_checks`` (a name → async
callable that raises when the dependency does not answer) in its lifespan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.http.responses import JSONResponse
from shared.metrics import DEPENDENCY_UP, metrics_endpoint

ReadinessCheck = Callable[[], Awaitable[object]]
READINESS_TIMEOUT_S = 1.0


async def live(request: Request) -> Response:
    """The process is up and its event loop answers."""
    return JSONResponse({"status": "ok"})


async def run_readiness_checks(service: str, checks: dict[str, ReadinessCheck]) -> dict[str, str]:
    """Run every check concurrently, each bounded by a timeout; ``"ok"`` or the failure."""

    async def one(name: str, check: ReadinessCheck) -> tuple[str, str]:
        try:
            await asyncio.wait_for(check(), READINESS_TIMEOUT_S)
        except Exception as error:  # any failure means "not ready"
            DEPENDENCY_UP.labels(service, name).set(0)
            return name, f"error: {type(error).__name__}: {error}"[:200]
        DEPENDENCY_UP.labels(service, name).set(1)
        return name, "ok"

    results = await asyncio.gather(*(one(name, check) for name, check in checks.items()))
    return dict(results)


async def ready(request: Request) -> Response:
    """200 when every dependency answers, else 503 naming the ones that do not."""
    checks: dict[str, ReadinessCheck] = getattr(request.app.state, "readiness_checks", {})
    service: str = getattr(request.app.state, "service_name", "podium")
    results = await run_readiness_checks(service, checks)
    healthy = all(result == "ok" for result in results.values())
    return JSONResponse(
        {"status": "ok" if healthy else "unavailable", "checks": results},
        status_code=200 if healthy else 503,
    )


def health_routes() -> list[Route]:
    """The three operational routes."""
    return [
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
