"""The ingest service's app factory."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterator

from starlette.applications import Starlette

from services.ingest.api import OPERATIONS, openapi_document
from services.ingest.context import IngestContext
from services.ingest.publisher import publisher_class
from services.ingest.rate_policies import RatePolicies
from services.ingest.settings import IngestSettings
from services.ingest.tournament_gate import TournamentGate
from shared.competition_cache import CompetitionCache
from shared.http.app import create_service_app
from shared.http.client_ip import parse_networks
from shared.http.openapi import (
    direct_routes,
    openapi_route,
    operation_routes,
    standard_operations,
)
from shared.leaderboard_store import LeaderboardStore
from shared.rate_limit.lease import LeasingRateLimiter
from shared.resources import open_resources

SERVICE = "ingest"
GC_GEN0_THRESHOLD = 50_000
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def collecting_rarely() -> Iterator[None]:
    """Freeze the start-up objects and raise the generation-0 threshold while serving.

    A 500-event batch allocates tens of thousands of short-lived objects: with the default
    thresholds a full collection (which walks every object of the process, the start-up
    ones included) ran about every 10,000 events, and collections were ~35% of a batch's CPU
    (7-8 of ~20 us per event in-process); frozen start-up objects and a 50,000 threshold
    leave ~0.2-1 us. Almost all of these objects are freed by reference counting anyway, so
    memory does not grow. The previous thresholds are restored on the way out (tests run
    several apps in one process).
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()


def create_app(settings: IngestSettings) -> Starlette:
    """Build the ingest app; its lifespan opens PostgreSQL, Redis and the Kafka producer.

    Shutdown order (uvicorn, then this lifespan): stop accepting connections, let in-flight
    requests finish (``shutdown_grace_s``), flush the producer, close the clients.
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(settings, postgres=True, redis=True, producer=True) as resources:
            producer = resources.require_producer()
            app.state.ingest = IngestContext(
                settings=settings,
                pool=resources.require_pool(),
                publisher=publisher_class()(
                    producer,
                    settings.topic_score_events,
                    timeout_s=settings.kafka_request_timeout_s,
                ),
                competitions=CompetitionCache.from_pool(
                    resources.require_pool(), ttl_s=settings.competition_cache_ttl_s
                ),
                limiter=LeasingRateLimiter(
                    resources.require_redis(),
                    settings.redis_key_prefix,
                    service=SERVICE,
                    max_tokens=settings.rate_lease_max_tokens,
                    lease_s=settings.rate_lease_ms / 1000,
                ),
                policies=RatePolicies.from_settings(settings),
                trusted_proxies=parse_networks(settings.trusted_proxies),
                store=LeaderboardStore(resources.require_redis(), settings.redis_key_prefix),
                producer=producer,
                tournament_gate=TournamentGate(
                    resources.require_pool(), ttl_s=settings.competition_cache_ttl_s
                ),
            )
            app.state.resources = resources  # pool gauges on /metrics
            app.state.readiness_checks = resources.readiness_checks
            try:
                with collecting_rarely():
                    yield
            finally:
                logger.info("flushing the producer")
                await producer.flush()

    document = openapi_document([*standard_operations(), *OPERATIONS])
    routes = [*operation_routes(OPERATIONS), openapi_route(document)]
    return create_service_app(
        SERVICE,
        settings,
        routes=routes,
        lifespan=lifespan,
        direct_routes=direct_routes(OPERATIONS),
    )
