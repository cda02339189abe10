"""The Redis client factory: a plain client, or a cluster client seeded from the URL's nodes."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from shared.redis_client import create_redis, is_cluster
from shared.settings import CommonSettings


def _settings(**overrides: object) -> CommonSettings:
    return CommonSettings(env="dev", **overrides)  # type: ignore[arg-type]


async def test_single_redis_by_default() -> None:
    client = create_redis(_settings(redis_url="redis://127.0.0.1:6379/0"))
    try:
        assert isinstance(client, Redis)
        assert not is_cluster(client)
    finally:
        await client.aclose()


async def test_cluster_seeds_are_every_listed_node_with_the_first_credentials() -> None:
    client = create_redis(
        _settings(
            redis_cluster=True,
            redis_url="redis://user:s%40cret@127.0.0.1:7000, redis://127.0.0.2:7001,",
            redis_pool_max=7,
        )
    )
    try:
        assert isinstance(client, RedisCluster)
        assert is_cluster(client)
        seeds = client.nodes_manager.startup_nodes
        assert sorted(seeds) == ["127.0.0.1:7000", "127.0.0.2:7001"]
        node = seeds["127.0.0.1:7000"]
        assert node.max_connections == 7
        assert node.connection_kwargs["username"] == "user"
        assert node.connection_kwargs["password"] == "s@cret"
    finally:
        await client.aclose()


def test_a_cluster_url_without_a_node_is_refused() -> None:
    with pytest.raises(ValueError, match="names no cluster node"):
        create_redis(_settings(redis_cluster=True, redis_url=" , "))
