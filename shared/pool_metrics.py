"""Pool usage gauges (``podium_pool_connections_in_use`` / ``_max``), refreshed per scrape.

The ``/metrics`` endpoint calls :func:`observe_pools` with the app's open resources, so the
pool-exhaustion alert sees current numbers without a background task.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from prometheus_client import Gauge
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

POOL_IN_USE = Gauge(
    "podium_pool_connections_in_use",
    "Connections of a client pool currently in use.",
    ["service", "pool"],
)
POOL_SIZE = Gauge(
    "podium_pool_connections_max", "Maximum connections of a client pool.", ["service", "pool"]
)


def _postgres(service: str, pool: asyncpg.Pool) -> None:
    POOL_IN_USE.labels(service, "postgres").set(pool.get_size() - pool.get_idle_size())
    POOL_SIZE.labels(service, "postgres").set(pool.get_max_size())


def _redis(service: str, client: Redis) -> None:
    pool = client.connection_pool
    in_use = getattr(pool, "_in_use_connections", ())
    POOL_IN_USE.labels(service, "redis").set(len(in_use))
    max_connections = getattr(pool, "max_connections", None)
    if max_connections:
        POOL_SIZE.labels(service, "redis").set(max_connections)


def _redis_cluster(service: str, client: RedisCluster) -> None:
    """Summed over the nodes the client knows (each has its own pool of ``max_connections``)."""
    nodes = client.get_nodes()
    in_use = sum(
        len(getattr(node, "_connections", ())) - len(getattr(node, "_free", ())) for node in nodes
    )
    POOL_IN_USE.labels(service, "redis").set(in_use)
    POOL_SIZE.labels(service, "redis").set(sum(node.max_connections for node in nodes))


def observe_pools(service: str, resources: Any) -> None:
    """Set the pool gauges of ``service`` from its open PostgreSQL pool and Redis client."""
    pool = getattr(resources, "pool", None)
    if isinstance(pool, asyncpg.Pool):
        _postgres(service, pool)
    redis = getattr(resources, "redis", None)
    if isinstance(redis, Redis):
        _redis(service, redis)
    elif isinstance(redis, RedisCluster):
        _redis_cluster(service, redis)
