"""The ingest service's app factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from shared.http.app import create_service_app
from shared.resources import open_resources
from shared.settings import Settings, get_settings

SERVICE = "ingest"


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the ingest app; its lifespan opens PostgreSQL, Redis and the Kafka producer."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(settings, postgres=True, redis=True, producer=True) as resources:
            app.state.resources = resources
            app.state.readiness_checks = resources.readiness_checks
            yield

    return create_service_app(SERVICE, settings, routes=[], lifespan=lifespan)
