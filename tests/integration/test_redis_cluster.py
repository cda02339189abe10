"""Podium's Redis code on a real Redis Cluster (``PODIUM_REDIS_CLUSTER=true``, issue #18).

One private cluster (3 masters + 3 replicas of Debian's ``redis-server``) serves the module;
every test uses its own key prefix and PostgreSQL schema. Competitions are spread over the
masters' slots, so each test crosses nodes: pipelines split by node, scripts and the rebuild
swap stay in one competition's slot, SCANs visit every master.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import asyncpg
import pytest
from prometheus_client import REGISTRY
from redis.asyncio.cluster import RedisCluster

from devstack.cleanup import delete_prefix
from devstack.redis_cluster import RedisClusterServers, redis_cluster
from podium.settings import PlatformSettings
from services.ranker.index import PlannedWrite, write_batch
from shared.leaderboard_store import LeaderboardStore, StandingWrite
from shared.pool_metrics import observe_pools
from shared.rate_limit.buckets import RateLimiter, RatePolicy
from shared.redis_client import RedisClient, create_redis, server_identity
from shared.redis_keys import built_key, competition_windows
from shared.schemas.competition import Competition, SortOrder
from tests.support.ranker_harness import override

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
IDS = [f"cl-{index}" for index in range(12)]


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[RedisClusterServers]:
    with redis_cluster(tmp_path_factory.mktemp("cluster"), artifacts_dir) as servers:
        yield servers


@pytest.fixture
async def client(
    settings: PlatformSettings, cluster: RedisClusterServers
) -> AsyncIterator[tuple[PlatformSettings, RedisClient]]:
    cluster_settings = override(settings, redis_url=cluster.url, redis_cluster=True)
    redis = create_redis(cluster_settings)
    yield cluster_settings, redis
    await delete_prefix(redis, cluster_settings.redis_key_prefix)
    await redis.aclose()


async def _insert(pool: asyncpg.Pool, ids: list[str]) -> None:
    await pool.executemany(
        "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
        " last_event_ts) VALUES ($1, $2, $3, $4, $5, $5)",
        [
            (cid, window, f"u{user}", float(user * (index + 1)), T0)
            for index, cid in enumerate(ids)
            for window in ("alltime", "2026-W48")
            for user in range(5)
        ],
    )


def _competition(cid: str) -> Competition:
    return Competition.model_validate(
        {"id": cid, "name": cid, "sort_order": "desc", "operator": "best", "reset": "none",
         "timezone": "UTC", "starts_at": None, "ends_at": None, "max_value": None,
         "visibility": "public", "created_at": T0, "updated_at": T0}
    )  # fmt: skip


async def test_the_factory_gives_a_cluster_client_spanning_every_master(
    client: tuple[PlatformSettings, RedisClient], cluster: RedisClusterServers
) -> None:
    settings, redis = client
    assert isinstance(redis, RedisCluster)
    assert await redis.ping()
    masters = {cluster.master_of(built_key(settings.redis_key_prefix, cid)) for cid in IDS}
    assert len(masters) == 3, "the competitions should span every master"
    identity = await server_identity(redis)
    assert len(identity.run_id.split(",")) == 3  # one run_id per primary
    observe_pools("cluster-test", SimpleNamespace(redis=redis))
    labels = {"service": "cluster-test", "pool": "redis"}
    size = REGISTRY.get_sample_value("podium_pool_connections_max", labels)
    assert size == settings.redis_pool_max * len(redis.get_nodes())
    assert REGISTRY.get_sample_value("podium_pool_connections_in_use", labels) == 0


async def test_rebuild_write_read_and_scan_across_nodes(
    client: tuple[PlatformSettings, RedisClient], pool: asyncpg.Pool
) -> None:
    settings, redis = client
    store = LeaderboardStore(redis, settings.redis_key_prefix)
    await _insert(pool, IDS)
    for cid in IDS:
        assert await store.rebuild(pool, cid, SortOrder.DESC) == 10
    assert await store.built_markers(IDS) == ["0"] * len(IDS)
    for cid in IDS:  # SCAN visits every master: each competition's windows are found
        assert await competition_windows(redis, settings.redis_key_prefix, cid) == {
            "alltime",
            "2026-W48",
        }
    # one pipelined batch across every node, scripts sent by SHA (loaded where missing)
    await redis.script_flush()
    planned = [
        PlannedWrite(_competition(cid), {"alltime": [StandingWrite("new", 1000.0, T0)]})
        for cid in IDS
    ]
    indexed = await write_batch(
        store,
        planned,
        {cid: 1 for cid in IDS},
        3,
        1_000,
    )
    assert [item.stale for item in indexed] == [None] * len(IDS)
    assert [item.version for item in indexed] == [1_000] * len(IDS)  # the counters start
    for item in indexed:
        assert item.results is not None
        assert item.results["alltime"].ranks == {"new": 1}
        assert item.results["alltime"].top[0] == ("new", 1000.0)
    assert await store.built_markers(IDS) == ["1"] * len(IDS)
    ranks = await store.ranks(IDS[3], "alltime", SortOrder.DESC, ["new", "u4", "nobody"])
    assert ranks.total == 6
    assert {user: entry.rank for user, entry in ranks.found.items()} == {"new": 1, "u4": 2}
    top = await store.top(IDS[5], "2026-W48", SortOrder.DESC, 0, 2)
    assert [entry.user_id for entry in top] == ["u4", "u3"]
    await store.drop(IDS[0])
    assert await store.built_markers(IDS[:1]) == [None]


async def test_rate_limit_buckets_on_the_cluster(
    client: tuple[PlatformSettings, RedisClient],
) -> None:
    settings, redis = client
    limiter = RateLimiter(redis, settings.redis_key_prefix, service="test")
    policy = RatePolicy("player", per_s=0.001, burst=3)
    decisions = [await limiter.acquire(policy, subject) for subject in ("a", "b") for _ in range(4)]
    assert [decision.allowed for decision in decisions] == [True, True, True, False] * 2
    assert all(decision.enforced for decision in decisions)
