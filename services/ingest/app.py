"""The ingest service's app factory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from services.ingest.api import OPERATIONS, openapi_document
from services.ingest.client_ip import parse_networks
from services.ingest.context import IngestContext
from services.ingest.publisher import EventPublisher
from services.ingest.rate_limit.lease import LeasingRateLimiter
from services.ingest.rate_limit.policy import RatePolicies
from services.ingest.settings import IngestSettings
from shared.competition_cache import CompetitionCache
from shared.http.app import create_service_app
from shared.http.openapi import openapi_route, operation_routes, standard_operations
from shared.resources import open_resources

SERVICE = "ingest"
logger = logging.getLogger(__name__)


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
                publisher=EventPublisher(
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
            )
            app.state.resources = resources  # pool gauges on /metrics
            app.state.readiness_checks = resources.readiness_checks
            try:
                yield
            finally:
                logger.info("flushing the producer")
                await producer.flush()

    document = openapi_document([*standard_operations(), *OPERATIONS])
    routes = [*operation_routes(OPERATIONS), openapi_route(document)]
    return create_service_app(SERVICE, settings, routes=routes, lifespan=lifespan)
