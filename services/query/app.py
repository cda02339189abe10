"""The query service's app factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from shared.http.app import create_service_app
from shared.http.openapi import (
    build_openapi,
    openapi_route,
    operation_routes,
    standard_operations,
)
from shared.rate_limit.buckets import RatePolicy
from shared.rate_limit.readers import ReadLimits, ReadRateLimitMiddleware
from shared.redis_client import RedisClient
from shared.resources import open_resources

from .context import QueryContext
from .invalidation import follow_changes
from .routes import OPERATIONS
from .settings import QuerySettings
from .teams import TEAM_OPERATIONS
from .top import TEAMS_TOP_PATH, TOP_PATH, TopPages

SERVICE = "query"
API_VERSION = "1.0.0"


def openapi_document() -> dict[str, Any]:
    """The query service's OpenAPI document (built from the same list as its routes)."""
    return build_openapi(
        "Podium query",
        API_VERSION,
        [*standard_operations(), *OPERATIONS, *TEAM_OPERATIONS],
        description="Read API: leaderboards (top pages, a user, around a user, friends)"
        " and competitions.",
    )


def read_limits(settings: QuerySettings, redis: RedisClient) -> ReadLimits:
    """The read limits (``PODIUM_QUERY_RATE_*``): per token subject, else per address."""
    return ReadLimits.open(
        redis,
        settings,
        service=SERVICE,
        subject_policy=RatePolicy(
            "reader", settings.query_rate_reader_per_s, settings.query_rate_reader_burst
        ),
        anonymous_policy=RatePolicy(
            "reader_anonymous",
            settings.query_rate_anonymous_per_s,
            settings.query_rate_anonymous_burst,
        ),
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
            app.state.read_limits = read_limits(settings, resources.require_redis())
            async with follow_changes(settings, context.pages, context.catalog) as feed:
                app.state.change_feed = feed
                yield

    routes = [
        Route(TOP_PATH, TopPages(), methods=["GET"]),
        Route(TEAMS_TOP_PATH, TopPages(teams=True), methods=["GET"]),
        *operation_routes(
            operation for operation in [*OPERATIONS, *TEAM_OPERATIONS] if operation.endpoint
        ),
        openapi_route(openapi_document()),
    ]
    return create_service_app(
        SERVICE,
        settings,
        routes=routes,
        lifespan=lifespan,
        inner_middleware=[Middleware(ReadRateLimitMiddleware)],
    )
