"""The notifier service's app factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route, WebSocketRoute

from services.notifier.gc_pauses import freeze_long_lived, unwatch_gc_pauses, watch_gc_pauses
from services.notifier.hub import Hub
from services.notifier.openapi import notifier_openapi
from services.notifier.page import page_routes
from services.notifier.repository import NotifierRepository
from services.notifier.settings import NotifierSettings
from services.notifier.wire import FrameWriterProtocol, log_connections_at_debug
from services.notifier.ws import leaderboard_socket, upgrade_required
from shared.change_feed import open_change_feed
from shared.http.app import create_service_app
from shared.http.openapi import openapi_route
from shared.http.server import WebSocketLimits
from shared.rate_limit.buckets import RatePolicy
from shared.rate_limit.readers import ReadLimits, ReadRateLimitMiddleware
from shared.redis_client import RedisClient
from shared.resources import open_resources
from shared.tasks import cancel_and_wait

SERVICE = "notifier"
SOCKET_PATH = "/ws/leaderboards/{competition_id}"


def routes() -> list[BaseRoute]:
    """The notifier's routes besides health and metrics."""
    return [
        WebSocketRoute(SOCKET_PATH, leaderboard_socket),
        Route(SOCKET_PATH, upgrade_required, methods=["GET"]),
        *page_routes(),
        openapi_route(notifier_openapi()),
    ]


def websocket_limits(settings: NotifierSettings) -> WebSocketLimits:
    """The server's WebSocket limits from the notifier's settings (``podium serve notifier``)."""
    return WebSocketLimits(
        max_message_bytes=settings.ws_max_message_bytes,
        ping_interval_s=settings.ws_ping_interval_s,
        protocol=f"{FrameWriterProtocol.__module__}:{FrameWriterProtocol.__qualname__}",
    )


def connect_limits(settings: NotifierSettings, redis: RedisClient) -> ReadLimits:
    """The connect limits (``PODIUM_WS_CONNECT_*``): per token subject, else per address.
    They charge every socket connect and every HTTP request (the page, the document)."""
    return ReadLimits.open(
        redis,
        settings,
        service=SERVICE,
        subject_policy=RatePolicy(
            "ws_connect", settings.ws_connect_rate_per_s, settings.ws_connect_burst
        ),
        anonymous_policy=RatePolicy(
            "ws_connect_anonymous",
            settings.ws_connect_rate_anonymous_per_s,
            settings.ws_connect_anonymous_burst,
        ),
    )


def create_app(settings: NotifierSettings) -> Starlette:
    """Build the notifier app; its lifespan opens PostgreSQL, Redis and the change feed."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watch_gc_pauses()
        log_connections_at_debug()
        async with open_resources(
            settings, postgres=True, read_replicas=True, redis=True
        ) as resources:
            repository = NotifierRepository(
                resources.require_read_pool(),
                resources.require_redis(),
                settings.redis_key_prefix,
                competition_ttl_s=settings.competition_cache_ttl_s,
            )
            hub = Hub(repository, settings.ws_max_connections)
            app.state.resources = resources
            app.state.repository = repository
            app.state.hub = hub
            app.state.read_limits = connect_limits(settings, resources.require_redis())
            freezer = asyncio.create_task(freeze_long_lived(), name="gc-freezer")
            try:
                async with open_change_feed(settings, hub.on_change) as feed:

                    async def feed_running() -> None:
                        if not feed.running:
                            raise RuntimeError("the change feed stopped")

                    app.state.readiness_checks = {
                        **resources.readiness_checks,
                        "change_feed": feed_running,
                    }
                    yield
            finally:
                await cancel_and_wait(freezer)
                await hub.close()
                unwatch_gc_pauses()

    return create_service_app(
        SERVICE,
        settings,
        routes=routes(),
        lifespan=lifespan,
        inner_middleware=[Middleware(ReadRateLimitMiddleware)],
    )
