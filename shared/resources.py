"""Opening and closing the clients a service needs, in one place.

Services enter :func:`open_resources` in their lifespan; it opens what they ask for, registers
a readiness check per dependency and closes everything in reverse order on the way out.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from shared import db, kafka, redis_client
from shared.http.health import ReadinessCheck
from shared.read_replicas import ReadPool, open_read_pool
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    """The open clients of a service; the ones not asked for stay None."""

    settings: CommonSettings
    pool: asyncpg.Pool | None = None
    read_pool: ReadPool | None = None
    redis: redis_client.RedisClient | None = None
    producer: AIOKafkaProducer | None = None
    readiness_checks: dict[str, ReadinessCheck] = field(default_factory=dict)

    def require_pool(self) -> asyncpg.Pool:
        """The PostgreSQL pool (the service asked for it)."""
        assert self.pool is not None, "open_resources(postgres=True) was not requested"
        return self.pool

    def require_read_pool(self) -> ReadPool:
        """The read pool over the primary and its read replicas (the service asked for it)."""
        assert self.read_pool is not None, "open_resources(read_replicas=True) was not requested"
        return self.read_pool

    def require_redis(self) -> redis_client.RedisClient:
        """The Redis client (the service asked for it)."""
        assert self.redis is not None, "open_resources(redis=True) was not requested"
        return self.redis

    def require_producer(self) -> AIOKafkaProducer:
        """The started Kafka producer (the service asked for it)."""
        assert self.producer is not None, "open_resources(producer=True) was not requested"
        return self.producer


@contextlib.asynccontextmanager
async def open_resources(
    settings: CommonSettings,
    *,
    postgres: bool = False,
    postgres_dsn: SecretStr | None = None,
    read_replicas: bool = False,
    redis: bool = False,
    producer: bool = False,
) -> AsyncIterator[Resources]:
    """Open the requested clients; close them in reverse order when the block ends.

    Start-up fails fast when a dependency is unreachable; after start-up, the clients
    reconnect on their own and readiness reports what does not answer. ``postgres_dsn``
    replaces ``PODIUM_DATABASE_URL`` for the pool. ``read_replicas`` (with ``postgres``) also
    opens a :class:`~shared.read_replicas.ReadPool` over the pool and the replicas of
    ``PODIUM_DATABASE_READ_URL``; readiness stays the primary's (reads fall back to it).
    """
    resources = Resources(settings=settings)
    async with contextlib.AsyncExitStack() as stack:
        if postgres:
            pool = await db.create_pool(settings, dsn=postgres_dsn)
            stack.push_async_callback(pool.close)
            resources.pool = pool
            resources.readiness_checks["postgres"] = lambda: db.ping(pool)
            if read_replicas:
                resources.read_pool = await stack.enter_async_context(
                    open_read_pool(settings, pool)
                )
        if redis:
            client = redis_client.create_redis(settings)
            stack.push_async_callback(client.aclose)
            resources.redis = client
            resources.readiness_checks["redis"] = lambda: redis_client.ping(client)
        if producer:
            kafka_producer = kafka.create_producer(settings)
            await kafka_producer.start()
            stack.push_async_callback(kafka_producer.stop)
            resources.producer = kafka_producer
            resources.readiness_checks["kafka"] = lambda: kafka.ping(kafka_producer)
        yield resources
