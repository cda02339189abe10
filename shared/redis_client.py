"""Redis access: a bounded asyncio client with short timeouts."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.settings import CommonSettings


def create_redis(settings: CommonSettings, *, max_connections: int | None = None) -> Redis:
    """A client whose pool blocks (briefly) instead of opening unbounded connections.

    A command whose pooled connection turns out closed (Redis restarted or failed over since
    it was opened) is sent once more on a new connection, at once: otherwise every idle
    connection fails one request after a restart (503s, 1013 closes, the query breaker
    opening). Only connection errors are retried, never timeouts (a hung Redis must not cost
    twice the timeout); a retried command can have run on a server that died before
    answering, which Podium's scripts tolerate (absolute writes, a refused stale write is
    rebuilt, versions only need to increase).
    """
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=max_connections or settings.redis_pool_max,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)


async def ping(client: Redis) -> None:
    """Raise unless Redis answers PING."""
    await client.ping()
