"""PostgreSQL read replicas (issue #18) against a real streaming replica.

The module starts a private primary and a hot standby of it (``tests/support/pg_replica.py``)
once; each test migrates its own schema on the primary (the replica follows). Reads must go to
the replica, fall back to the primary when it is frozen, killed or lags past the bound, come
back when it is healthy, and no rebuild or reconcile pass may leave Redis holding standings
older than PostgreSQL's under a marker that calls them fresh.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from devstack.cleanup import discard_run_data
from devstack.processes import free_port
from podium.settings import PlatformSettings
from services.notifier.repository import NotifierRepository
from services.query.app import create_app
from services.ranker.applier import BatchApplier, decode
from services.ranker.planner import IncomingEvent
from services.ranker.reconcile import Reconciler, Trigger, reconcile_command
from shared.competitions import create_competition
from shared.db import create_pool
from shared.kafka import create_producer, ensure_topics
from shared.leaderboard_store import LeaderboardStore, read_standings_version
from shared.migrations import migrate
from shared.read_replicas import (
    ReadPool,
    lsn_text,
    open_read_pool,
    primary_position,
    replica_label,
)
from shared.redis_client import create_redis
from shared.schemas.competition import CompetitionCreate, SortOrder
from shared.schemas.score_event import ScoreEvent
from tests.conftest import SettingsFactory
from tests.support.pg_replica import StreamingReplica, streaming_replica
from tests.support.servers import running_app

CID = "c1"
T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def pair(artifacts_dir: Path) -> Iterator[StreamingReplica]:
    """One private primary and its streaming replica for the whole module."""
    with streaming_replica(artifacts_dir / "read-replicas") as servers:
        yield servers


@pytest.fixture(autouse=True)
def _replica_restored(pair: StreamingReplica) -> Iterator[None]:
    """Whatever a test did to the replica, the next one finds it running and replaying."""
    yield
    pair.thaw()
    assert pair.replica.process is not None
    if pair.replica.process.process.poll() is not None:
        pair.start(pair.replica)

    async def resume() -> None:
        connection = await asyncpg.connect(pair.replica.url, timeout=10)
        try:
            await connection.execute("SELECT pg_wal_replay_resume()")
        finally:
            await connection.close()

    asyncio.run(resume())


@dataclass
class Replicated:
    """A test's settings on the private primary and replica, and its clients."""

    settings: PlatformSettings
    pair: StreamingReplica
    primary: asyncpg.Pool
    applier: BatchApplier

    @property
    def label(self) -> str:
        return replica_label(self.settings.database_read_url[0])

    @property
    def store(self) -> LeaderboardStore:
        return self.applier.store

    async def apply(self, *events: tuple[str, str, float]) -> None:
        """Apply one ranker batch of ``(event_id, user, value)`` events to ``CID``."""
        records: list[IncomingEvent] = []
        for offset, (event_id, user, value) in enumerate(events):
            ts = T0 + timedelta(seconds=offset)
            event = ScoreEvent(
                event_id=event_id, competition_id=CID, user_id=user, value=value, ts=ts,
                received_at=ts,
            )  # fmt: skip
            records.append(decode(0, offset, CID.encode(), event.model_dump_json().encode()))
        await self.applier.apply(records)

    async def replica_sql(self, query: str) -> object:
        connection = await asyncpg.connect(
            self.pair.replica.url,
            timeout=10,
            server_settings={"search_path": self.settings.db_schema},
        )
        try:
            return await connection.fetchval(query, timeout=10)
        finally:
            await connection.close(timeout=10)

    async def caught_up(self) -> None:
        """Wait until the replica has replayed everything the primary wrote so far."""
        lsn = lsn_text(await primary_position(self.primary))
        await eventually(
            lambda: self.replica_sql(f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")
        )

    async def postgres_board(self) -> list[tuple[str, float]]:
        rows = await self.primary.fetch(
            "SELECT user_id, score FROM standings WHERE competition_id = $1"
            " AND window_label = 'alltime' ORDER BY score DESC, reached_at, user_id",
            CID,
        )
        return [(row["user_id"], row["score"]) for row in rows]

    async def redis_board(self) -> list[tuple[str, float]]:
        top = await self.store.top(CID, "alltime", SortOrder.DESC, 0, 100)
        return [(entry.user_id, entry.score) for entry in top]

    async def primary_version(self) -> int:
        async with self.primary.acquire() as connection:
            return await read_standings_version(connection, CID)

    async def assert_redis_is_primary(self) -> None:
        """Redis holds PostgreSQL's (the primary's) standings and says so in its marker."""
        assert await self.store.built_markers([CID]) == [str(await self.primary_version())]
        assert await self.redis_board() == await self.postgres_board()


@pytest.fixture
async def replicated(
    pair: StreamingReplica, settings_factory: SettingsFactory
) -> AsyncIterator[Replicated]:
    settings = settings_factory(
        database_url=pair.primary.url,
        database_read_url=pair.replica.url,
        database_max_replica_lag_s=1.0,
        database_replica_check_interval_s=0.1,
    )
    await migrate(settings)
    await ensure_topics(settings)
    primary = await create_pool(settings)
    redis = create_redis(settings)
    producer = create_producer(settings)
    await producer.start()
    try:
        await create_competition(primary, CompetitionCreate(id=CID, name=CID))
        applier = BatchApplier(settings, primary, redis, producer)
        yield Replicated(settings, pair, primary, applier)
    finally:
        await producer.stop()
        await redis.aclose()
        await primary.close()
        await discard_run_data(settings)


CONDITION_CALL_TIMEOUT_S = 10.0


async def eventually(condition: Callable[[], Awaitable[object]], timeout_s: float = 30.0) -> None:
    """Wait until ``condition`` holds; one call that hangs (a connection stuck on a loaded
    machine) counts as "not yet" after ``CONDITION_CALL_TIMEOUT_S`` instead of hanging the
    test until pytest-timeout (seen once in CI)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if await asyncio.wait_for(condition(), CONDITION_CALL_TIMEOUT_S):
                return
        except TimeoutError:
            pass
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def reads(server: str) -> float:
    return sample("podium_db_reads_total", server=server)


def fallbacks(reason: str) -> float:
    return sample("podium_db_primary_fallback_reads_total", reason=reason)


async def usable(read_pool: ReadPool) -> bool:
    return bool(read_pool.usable_replicas())


async def unusable(read_pool: ReadPool) -> bool:
    return not read_pool.usable_replicas()


async def in_recovery(read_pool: ReadPool) -> bool:
    """Which server answered a read: True for the replica."""
    return bool(await read_pool.fetchval("SELECT pg_is_in_recovery()"))


async def test_reads_go_to_the_replica_and_an_idle_primary_is_no_lag(
    replicated: Replicated,
) -> None:
    settings = replicated.settings
    # the last record ends a WAL segment: until the next record the primary's insert
    # position is past the next page's header, where no replay position gets (the unit
    # tests pin the arithmetic; here background records may follow the switch)
    await replicated.primary.execute("SELECT pg_switch_wal()")
    await replicated.caught_up()
    async with open_read_pool(settings, replicated.primary) as read_pool:
        await eventually(lambda: usable(read_pool))
        before = reads(replicated.label)
        assert await in_recovery(read_pool)
        assert await read_pool.fetchval("SELECT name FROM competitions WHERE id = $1", CID) == CID
        assert reads(replicated.label) == before + 2
        # nothing written for several times the bound: the replica is still fresh
        await asyncio.sleep(3 * settings.database_max_replica_lag_s)
        assert read_pool.usable_replicas()
        assert sample("podium_db_replica_lag_seconds", replica=replicated.label) < 1.0
        assert await in_recovery(read_pool)


async def test_query_api_reads_are_served_by_the_replica(replicated: Replicated) -> None:
    """The query service's PostgreSQL reads (competition lookups, windows) run on the
    replica: its connections show in the replica's pg_stat_activity."""
    await replicated.apply(("e1", "ann", 10.0), ("e2", "bob", 20.0))
    await replicated.caught_up()
    settings = replicated.settings
    before = reads(replicated.label)
    async with (
        running_app(create_app(settings), settings) as url,
        httpx.AsyncClient(timeout=10) as client,
    ):
        competition = await client.get(f"{url}/api/v1/competitions/{CID}")
        assert competition.status_code == 200, competition.text
        assert [window["window"] for window in competition.json()["windows"]] == ["alltime"]
        top = await client.get(f"{url}/api/v1/leaderboards/{CID}/top")
        assert top.status_code == 200, top.text
        assert [entry["user_id"] for entry in top.json()["entries"]] == ["bob", "ann"]
        connections = await replicated.replica_sql(
            "SELECT count(*) FROM pg_stat_activity"
            f" WHERE application_name = 'podium/{settings.db_schema}'"
        )
        assert isinstance(connections, int)
        assert connections >= 1
    assert reads(replicated.label) >= before + 2


async def test_a_frozen_or_killed_replica_is_skipped_then_put_back(
    replicated: Replicated,
) -> None:
    settings = replicated.settings
    await replicated.caught_up()
    async with open_read_pool(settings, replicated.primary) as read_pool:
        await eventually(lambda: usable(read_pool))
        assert await in_recovery(read_pool)

        replicated.pair.freeze()  # SIGSTOP: connections open, nothing answers
        await eventually(lambda: unusable(read_pool))
        assert sample("podium_db_replica_usable", replica=replicated.label) == 0
        before = fallbacks("no_usable_replica")
        assert not await in_recovery(read_pool)  # the primary answered at once
        assert fallbacks("no_usable_replica") == before + 1
        replicated.pair.thaw()
        await eventually(lambda: usable(read_pool))
        assert await in_recovery(read_pool)

        # killed between two checks: the read itself fails on the replica and is retried
        # on the primary, and the replica is skipped from then on
        replicated.pair.kill()
        before = fallbacks("replica_failed") + fallbacks("no_usable_replica")
        assert not await in_recovery(read_pool)
        assert fallbacks("replica_failed") + fallbacks("no_usable_replica") == before + 1
        await eventually(lambda: unusable(read_pool))
        assert not await in_recovery(read_pool)

        replicated.pair.start(replicated.pair.replica)
        await eventually(lambda: usable(read_pool))
        assert await in_recovery(read_pool)


async def test_a_replica_lagging_past_the_bound_is_skipped_until_it_catches_up(
    replicated: Replicated,
) -> None:
    settings = replicated.settings
    await replicated.caught_up()
    async with open_read_pool(settings, replicated.primary) as read_pool:
        await eventually(lambda: usable(read_pool))
        await replicated.replica_sql("SELECT pg_wal_replay_pause()")
        version = 0

        async def write_and_check() -> bool:
            nonlocal version
            version += 1
            await replicated.apply((f"e{version}", "ann", float(version)))
            return not read_pool.usable_replicas()

        await eventually(write_and_check)
        # skipped because it was behind for longer than the bound
        lag_s = sample("podium_db_replica_lag_seconds", replica=replicated.label)
        assert lag_s > settings.database_max_replica_lag_s
        # the primary answers, with the newest standing
        assert not await in_recovery(read_pool)
        score = await read_pool.fetchval(
            "SELECT score FROM standings WHERE competition_id = $1 AND user_id = 'ann'"
            " AND window_label = 'alltime'",
            CID,
        )
        assert score == float(version)

        await replicated.replica_sql("SELECT pg_wal_replay_resume()")
        await eventually(lambda: usable(read_pool))
        assert await in_recovery(read_pool)


async def test_readers_rebuild_a_lost_board_from_the_primary_not_a_lagging_replica(
    replicated: Replicated,
) -> None:
    """The replica lags (within the bound, so lookups still go to it) and Redis lost the
    board: the query API's and the notifier's rebuilds load the primary's standings and
    stamp the primary's version, never the replica's older ones."""
    settings = replicated.settings.model_copy(update={"database_max_replica_lag_s": 600.0})
    await replicated.apply(("e1", "ann", 10.0), ("e2", "bob", 20.0))
    await replicated.caught_up()
    await replicated.replica_sql("SELECT pg_wal_replay_pause()")
    await replicated.apply(("e3", "cid", 30.0), ("e4", "ann", 40.0))
    assert await replicated.replica_sql("SELECT count(*) FROM standings") == 2

    await replicated.store.drop(CID)
    async with (
        running_app(create_app(settings), settings) as url,
        httpx.AsyncClient(timeout=10) as client,
    ):
        top = await client.get(f"{url}/api/v1/leaderboards/{CID}/top")
        assert top.status_code == 200, top.text
        assert [entry["user_id"] for entry in top.json()["entries"]] == ["ann", "cid", "bob"]
    await replicated.assert_redis_is_primary()

    await replicated.store.drop(CID)
    async with open_read_pool(settings, replicated.primary) as read_pool:
        await eventually(lambda: usable(read_pool))
        repository = NotifierRepository(
            read_pool, replicated.store.redis, settings.redis_key_prefix, competition_ttl_s=5
        )
        competition = await repository.competition(CID)
        assert competition is not None
        ranks = await repository.ranks(competition, "alltime", ["ann", "bob", "cid"])
        assert {user: entry.rank for user, entry in ranks.items()} == {
            "ann": 1,
            "cid": 2,
            "bob": 3,
        }
    await replicated.assert_redis_is_primary()


async def test_the_reconcile_scan_on_a_lagging_replica_misses_no_stale_board(
    replicated: Replicated,
) -> None:
    """Redis holds exactly what the lagging replica holds (standings and version one batch
    behind the primary): compared with the replica alone it would look fresh. The scan's
    fence makes the pass wait for the replica, then read the primary, and heal the board."""
    settings = replicated.settings.model_copy(update={"database_max_replica_lag_s": 600.0})
    await replicated.apply(("e1", "ann", 10.0), ("e2", "bob", 20.0))
    await replicated.caught_up()
    async with open_read_pool(settings, replicated.primary) as read_pool:
        await eventually(lambda: usable(read_pool))
        reconciler = Reconciler(
            settings,
            replicated.primary,
            replicated.store.redis,
            replicated.applier.producer,
            read_pool=read_pool,
        )
        before = reads(replicated.label)
        report = await reconciler.reconcile_once(Trigger.COMMAND)
        assert report.checked == 1
        assert not report.healed
        assert reads(replicated.label) == before + 1  # the scan ran on the replica

        await replicated.replica_sql("SELECT pg_wal_replay_pause()")
        await replicated.apply(("e3", "cid", 30.0))
        # Redis loses that batch: it is rebuilt from the replica, one batch behind
        replica_pool = read_pool.replicas[0].pool
        await replicated.store.rebuild(replica_pool, CID, SortOrder.DESC)
        stale_marker = await replicated.store.built_markers([CID])
        assert stale_marker == [str(await replicated.primary_version() - 1)]

        before = fallbacks("behind_fence")
        report = await reconciler.reconcile_once(Trigger.COMMAND)
        assert report.healed.keys() == {CID}
        assert fallbacks("behind_fence") == before + 1
    await replicated.assert_redis_is_primary()


async def test_podium_reconcile_scans_on_the_replica(replicated: Replicated) -> None:
    """``podium reconcile`` (one pass with the service's own clients) opens the read pool:
    its scan is served by the replica, and a board Redis lost is healed from the primary."""
    await replicated.apply(("e1", "ann", 10.0), ("e2", "bob", 20.0))
    await replicated.store.drop(CID)
    await replicated.caught_up()
    before = reads(replicated.label)
    report = await reconcile_command(replicated.settings)
    assert report.healed.keys() == {CID}
    assert reads(replicated.label) == before + 1
    await replicated.assert_redis_is_primary()


async def test_a_replica_down_at_start_up_is_skipped_not_fatal(replicated: Replicated) -> None:
    """A listed replica nobody answers on: the pool opens, reads go to the primary."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    settings = replicated.settings.model_copy(
        update={"database_read_url": [SecretStr(dead), *replicated.settings.database_read_url]}
    )
    async with open_read_pool(settings, replicated.primary) as read_pool:
        await eventually(lambda: usable(read_pool))
        assert [replica.label for replica in read_pool.usable_replicas()] == [replicated.label]
        for _ in range(4):  # round-robin over the usable ones only: always the live replica
            assert await in_recovery(read_pool)


async def test_replicas_keep_serving_reads_while_the_primary_hangs(
    replicated: Replicated,
) -> None:
    """No fresh primary position, no lag measured: a usable replica stays usable (reads
    keep working through a primary outage) and is still checked for answering."""
    settings = replicated.settings
    await replicated.caught_up()
    async with open_read_pool(settings, replicated.primary) as read_pool:
        await eventually(lambda: usable(read_pool))
        replicated.pair.freeze(replicated.pair.primary)
        try:
            await asyncio.sleep(
                3 * settings.database_max_replica_lag_s + settings.db_connect_timeout_s
            )
            checked_at = read_pool.replicas[0].checked_at

            async def checked_again() -> bool:
                return read_pool.replicas[0].checked_at > checked_at

            await eventually(checked_again)
            assert read_pool.usable_replicas()  # checked, still usable
            assert await in_recovery(read_pool)
            assert (
                await read_pool.fetchval("SELECT name FROM competitions WHERE id = $1", CID) == CID
            )
        finally:
            replicated.pair.thaw()
