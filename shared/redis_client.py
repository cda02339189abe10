"""Redis access: a bounded asyncio client with short timeouts."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis

from shared.settings import CommonSettings


def create_redis(settings: CommonSettings, *, max_connections: int | None = None) -> Redis:
    """A client whose pool blocks (briefly) instead of opening unbounded connections."""
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=max_connections or settings.redis_pool_max,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


async def ping(client: Redis) -> None:
    """Raise unless Redis answers PING."""
    await client.ping()
