"""The ranker process: health/metrics endpoint (placeholder until the stream processor lands)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from shared.http.app import create_service_app
from shared.http.server import uvicorn_config
from shared.resources import open_resources
from shared.settings import Settings

SERVICE = "ranker"


def run(settings: Settings) -> int:
    """Run the ranker until SIGINT/SIGTERM; returns the exit status."""
    import uvicorn

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(settings, postgres=True, redis=True, producer=True) as resources:
            app.state.readiness_checks = resources.readiness_checks
            yield

    app = create_service_app(SERVICE, settings, routes=[], lifespan=lifespan)
    uvicorn.Server(uvicorn_config(app, settings, settings.ranker_port)).run()
    return 0
