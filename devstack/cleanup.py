"""Removing what one isolated run (a test, a soak, a benchmark) left in the shared stores."""

from __future__ import annotations

import asyncpg

from shared.redis_client import RedisClient, create_redis
from shared.redis_keys import prefix_pattern
from shared.settings import CommonSettings


async def drop_schema(database_url: str, schema: str) -> None:
    """``DROP SCHEMA … CASCADE`` (a missing schema is fine)."""
    connection = await asyncpg.connect(database_url)
    try:
        quoted = '"' + schema.replace('"', '""') + '"'
        await connection.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")
    finally:
        await connection.close()


async def delete_prefix(redis: RedisClient, prefix: str) -> int:
    """UNLINK every key under ``prefix`` (SCAN, never FLUSH: the Redis may be shared)."""
    deleted = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=prefix_pattern(prefix), count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += await redis.unlink(*batch)
            batch.clear()
    if batch:
        deleted += await redis.unlink(*batch)
    return deleted


async def discard_run_data(settings: CommonSettings) -> None:
    """Drop the run's schema and delete its Redis keys."""
    await drop_schema(settings.database_url.get_secret_value(), settings.db_schema)
    redis = create_redis(settings)
    try:
        await delete_prefix(redis, settings.redis_key_prefix)
    finally:
        await redis.aclose()
