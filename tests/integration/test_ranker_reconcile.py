"""The reconciler (issue #17) in-process against real PostgreSQL, the broker and a private
Redis that is restarted from an older snapshot (SAVE, more batches, SIGKILL, restart)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from podium.settings import PlatformSettings
from services.ranker.applier import BatchApplier, decode
from services.ranker.planner import IncomingEvent
from services.ranker.reconcile import Reconciler, Trigger, reconcile_lock_name
from shared.competitions import create_competition
from shared.db import create_pool
from shared.kafka import create_producer
from shared.leaderboard_store import (
    LeaderboardStore,
    Staleness,
    StandingWrite,
    VersionStep,
    read_standings_version,
)
from shared.redis_client import create_redis
from shared.schemas.change_message import ChangeMessage
from shared.schemas.competition import CompetitionCreate, SortOrder
from shared.schemas.score_event import ScoreEvent
from tests.conftest import SettingsFactory
from tests.support.private_redis import PrivateRedis, private_redis
from tests.support.servers import podium_command, process_environment
from tests.support.topic_reader import read_topic

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
ORDERS = {"c1": SortOrder.DESC, "c2": SortOrder.ASC}


@dataclass
class Stack:
    """A ranker's applier and reconciler over one private Redis."""

    settings: PlatformSettings
    server: PrivateRedis
    pool: asyncpg.Pool
    applier: BatchApplier
    reconciler: Reconciler

    @property
    def store(self) -> LeaderboardStore:
        return self.applier.store

    async def apply(self, *events: tuple[str, str, str, float]) -> None:
        """Apply one batch of ``(event_id, competition, user, value)`` score events."""
        records: list[IncomingEvent] = []
        for offset, (event_id, cid, user, value) in enumerate(events):
            ts = T0 + timedelta(seconds=offset)
            event = ScoreEvent(
                event_id=event_id, competition_id=cid, user_id=user, value=value, ts=ts,
                received_at=ts,
            )  # fmt: skip
            records.append(decode(0, offset, cid.encode(), event.model_dump_json().encode()))
        await self.applier.apply(records)

    async def redis_board(self, cid: str) -> list[tuple[str, float]]:
        top = await self.store.top(cid, "alltime", ORDERS[cid], 0, 100)
        return [(entry.user_id, entry.score) for entry in top]

    async def postgres_board(self, cid: str) -> list[tuple[str, float]]:
        rows = await self.pool.fetch(
            "SELECT user_id, score, reached_at FROM standings"
            " WHERE competition_id = $1 AND window_label = 'alltime'",
            cid,
        )
        sign = -1 if ORDERS[cid] is SortOrder.DESC else 1
        ordered = sorted(rows, key=lambda r: (sign * r["score"], r["reached_at"], r["user_id"]))
        return [(row["user_id"], row["score"]) for row in ordered]

    async def fresh(self) -> bool:
        """Whether every board and marker equals PostgreSQL (False while Redis fails)."""
        try:
            return await self._fresh()
        except RedisConnectionError:
            return False

    async def settle(self) -> None:
        """Drop the pooled connections to the Redis that was killed, as the loop does after
        its first failure (each would fail once)."""
        await self.store.redis.connection_pool.disconnect()

    async def _fresh(self) -> bool:
        for cid in ORDERS:
            async with self.pool.acquire() as connection:
                version = await read_standings_version(connection, cid)
            if await self.store.built_markers([cid]) != [str(version)]:
                return False
            if await self.redis_board(cid) != await self.postgres_board(cid):
                return False
        return True


@pytest.fixture
async def stack(
    settings_factory: SettingsFactory,
    settings: PlatformSettings,
    tmp_path: Path,
    artifacts_dir: Path,
) -> AsyncIterator[Stack]:
    log = artifacts_dir / f"reconcile-redis-{settings.db_schema}.log"
    with private_redis(tmp_path / "redis", log) as server:
        own = settings_factory(
            redis_url=server.url, reconcile_probe_interval_s=0.1, reconcile_interval_s=60
        )
        pool = await create_pool(own)
        redis = create_redis(own)
        producer = create_producer(own)
        await producer.start()
        try:
            for cid, order in ORDERS.items():
                await create_competition(
                    pool, CompetitionCreate(id=cid, name=cid, sort_order=order)
                )
            yield Stack(
                own,
                server,
                pool,
                BatchApplier(own, pool, redis, producer),
                Reconciler(own, pool, redis, producer),
            )
        finally:
            await producer.stop()
            await redis.aclose()
            await pool.close()


async def restore_older_snapshot(stack: Stack) -> None:
    """Two batches, a SAVE between them, then Redis restarted from that SAVE."""
    await stack.apply(("e1", "c1", "u1", 10), ("e2", "c1", "u2", 20), ("f1", "c2", "u9", 3))
    stack.server.save()
    await stack.apply(("e3", "c1", "u1", 30), ("f2", "c2", "u8", 1))
    assert await stack.fresh()
    stack.server.restart()
    # seen through a client of its own: the stack's pooled connections are left as they are
    client = Redis.from_url(stack.server.url)
    try:
        older = LeaderboardStore(client, stack.settings.redis_key_prefix)
        top = await older.top("c1", "alltime", SortOrder.DESC, 0, 10)
        assert [(e.user_id, e.score) for e in top] == [("u2", 20), ("u1", 10)]
        assert await older.built_markers(list(ORDERS)) == ["1", "1"]  # PostgreSQL: 2, 2
    finally:
        await client.aclose()


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_pass_heals_every_board_behind_postgres_and_announces_it(stack: Stack) -> None:
    await restore_older_snapshot(stack)
    await stack.settle()
    behind = _sample("podium_ranker_stale_boards_total", reason="behind", found_by="reconciler")
    report = await stack.reconciler.reconcile_once(Trigger.COMMAND)
    assert report.checked == 2
    assert report.healed == {"c1": Staleness.BEHIND, "c2": Staleness.BEHIND}
    assert await stack.fresh()
    assert await stack.redis_board("c1") == [("u1", 30), ("u2", 20)]
    assert (
        _sample("podium_ranker_stale_boards_total", reason="behind", found_by="reconciler")
        == behind + 2
    )
    rebuilt = [
        change
        for change in (
            ChangeMessage.model_validate_json(record.value)
            for record in await read_topic(stack.settings, stack.settings.topic_changes)
        )
        if change.rebuilt and change.windows and not change.windows[0].changed
    ]
    assert {change.competition_id for change in rebuilt} == {"c1", "c2"}
    c1 = next(change for change in rebuilt if change.competition_id == "c1").windows[0]
    assert (c1.window, c1.total, c1.top_changed) == ("alltime", 2, True)
    assert [(entry.user_id, entry.score) for entry in c1.top] == [("u1", 30), ("u2", 20)]
    # nothing left to heal
    again = await stack.reconciler.reconcile_once(Trigger.INTERVAL)
    assert (again.checked, again.healed) == (2, {})


async def test_a_pass_heals_boards_ahead_or_missing_and_skips_while_another_reconciles(
    stack: Stack,
) -> None:
    await stack.apply(("e1", "c1", "u1", 10), ("f1", "c2", "u9", 3))
    # c1: a rolled-back attempt's write (ghost, marker 2); c2: lost altogether
    await stack.store.write(
        "c1", SortOrder.DESC, {"alltime": [StandingWrite("ghost", 99, T0)]}, VersionStep(1, 2)
    )
    await stack.store.drop("c2")
    holder = await asyncpg.connect(stack.settings.database_url.get_secret_value())
    try:
        lock = reconcile_lock_name(stack.settings.db_schema)
        await holder.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", lock)
        assert (await stack.reconciler.reconcile_once(Trigger.INTERVAL)).skipped
        await holder.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock)
    finally:
        await holder.close()
    report = await stack.reconciler.reconcile_once(Trigger.INTERVAL)
    assert report.healed == {"c1": Staleness.AHEAD, "c2": Staleness.MISSING}
    assert await stack.fresh()
    assert await stack.redis_board("c1") == [("u1", 10)]


async def test_the_loop_heals_soon_after_redis_restarts_from_an_older_snapshot(
    stack: Stack,
) -> None:
    running = asyncio.create_task(stack.reconciler.run())
    try:
        await asyncio.sleep(0.3)  # the first probe: a pass at start, nothing to heal
        identity_passes = _sample(
            "podium_ranker_reconcile_passes_total", trigger="redis_identity", outcome="done"
        )
        stale_observed = _sample("podium_ranker_stale_board_seconds_count")
        await restore_older_snapshot(stack)
        restarted_at = time.monotonic()
        while not await stack.fresh():
            assert time.monotonic() - restarted_at < 3, "not healed within 3 s"
            await asyncio.sleep(0.02)
        print(f"\nhealed {time.monotonic() - restarted_at:.3f} s after the restart")
        # the pass that healed them counts once it has announced them too
        while (
            _sample(
                "podium_ranker_reconcile_passes_total", trigger="redis_identity", outcome="done"
            )
            == identity_passes
        ):
            assert time.monotonic() - restarted_at < 5, "the healing pass never ended"
            await asyncio.sleep(0.02)
        assert _sample("podium_ranker_stale_board_seconds_count") == stale_observed + 2
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


async def test_podium_reconcile_heals_once_and_exits_0(stack: Stack) -> None:
    await restore_older_snapshot(stack)
    await stack.settle()
    done = subprocess.run(
        podium_command("reconcile"),
        env=process_environment(stack.settings),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert b"rebuilt c1: was behind" in done.stdout
    assert b"checked 2 competition(s)" in done.stdout
    assert await stack.fresh()
