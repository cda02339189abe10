"""The stores of one micro-benchmark run: the configured PostgreSQL and Redis, a schema and
key prefix of the run's own (no broker: nothing in such a run produces), dropped after."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from bench.ranker_micro import make_settings
from devstack.cleanup import discard_run_data
from services.ranker.settings import RankerSettings
from shared.db import create_pool
from shared.leaderboard_store import LeaderboardStore
from shared.migrations import migrate
from shared.redis_client import RedisClient, create_redis


@dataclass(frozen=True)
class MicroStores:
    """What a micro-benchmark reads and writes through."""

    settings: RankerSettings
    pool: asyncpg.Pool
    redis: RedisClient
    store: LeaderboardStore


@contextlib.asynccontextmanager
async def micro_stores() -> AsyncIterator[MicroStores]:
    """The run's schema migrated, a pool and a Redis client; everything the run wrote is
    dropped afterwards, whatever happened."""
    settings = make_settings("127.0.0.1:1", 1)
    await migrate(settings)
    pool = await create_pool(settings)
    redis = create_redis(settings)
    try:
        yield MicroStores(settings, pool, redis, LeaderboardStore(redis, settings.redis_key_prefix))
    finally:
        await pool.close()
        await redis.aclose()
        await discard_run_data(settings)
