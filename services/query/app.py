"""The query service's app factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from shared.http.app import create_service_app
from shared.http.openapi import (
    build_openapi,
    openapi_route,
    operation_routes,
    standard_operations,
)
from shared.resources import open_resources

from .context import QueryContext
from .invalidation import follow_changes
from .routes import OPERATIONS
from .settings import QuerySettings
from .top import TOP_PATH, TopPages

SERVICE = "query"
API_VERSION = "1.0.0"


def openapi_document() -> dict[str, Any]:
    """The query service's OpenAPI document (built from the same list as its routes)."""
    return build_openapi(
        "Podium query",
        API_VERSION,
        [*standard_operations(), *OPERATIONS],
        description="Read API: leaderboards (top pages, a user, around a user, friends)"
        " and competitions.",
    )


def create_app(settings: QuerySettings) -> Starlette:
    """Build the query app; its lifespan opens PostgreSQL (primary and replicas) and Redis."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(
            settings, postgres=True, read_replicas=True, redis=True
        ) as resources:
            app.state.resources = resources
            app.state.readiness_checks = resources.readiness_checks
            context = QueryContext.build(
                settings, resources.require_read_pool(), resources.require_redis()
            )
            app.state.query = context
            async with follow_changes(settings, context.pages, context.catalog) as feed:
                app.state.change_feed = feed
                yield

    routes = [
        Route(TOP_PATH, TopPages(), methods=["GET"]),
        *operation_routes(operation for operation in OPERATIONS if operation.endpoint),
        openapi_route(openapi_document()),
    ]
    return create_service_app(SERVICE, settings, routes=routes, lifespan=lifespan)
