"""The ranker's batch applier in-process against real PostgreSQL, Redis and the broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import cast

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from services.ranker.applier import BatchApplier, decode
from services.ranker.planner import IncomingEvent
from services.ranker.repository import BATCH_STATE_SQL, begin_batch
from services.ranker.rules import DeadLetterReason
from shared.competitions import create_competition, update_competition
from shared.db import create_pool
from shared.kafka import create_producer
from shared.leaderboard_store import StandingWrite, VersionStep, read_standings_version
from shared.redis_client import create_redis
from shared.redis_keys import version_key
from shared.schemas.change_message import ChangeMessage
from shared.schemas.competition import (
    CompetitionCreate,
    CompetitionUpdate,
    SortOrder,
    TeamAggregate,
    TeamsSetting,
)
from shared.schemas.score_event import ControlAction, ControlEvent, ScoreEvent
from shared.teams import team_board_id
from tests.conftest import SettingsFactory
from tests.support.private_redis import private_redis
from tests.support.ranker_harness import override
from tests.support.topic_reader import read_topic

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


@contextlib.asynccontextmanager
async def open_applier(settings: PlatformSettings) -> AsyncIterator[BatchApplier]:
    """An applier on its own pool, Redis client and producer, with competition c1."""
    pool: asyncpg.Pool = await create_pool(settings)
    redis: Redis = create_redis(settings)
    producer: AIOKafkaProducer = create_producer(settings)
    await producer.start()
    try:
        await create_competition(pool, CompetitionCreate(id="c1", name="c1"))
        yield BatchApplier(settings, pool, redis, producer)
    finally:
        await producer.stop()
        await redis.aclose()
        await pool.close()


@pytest.fixture
async def applier(settings: PlatformSettings) -> AsyncIterator[BatchApplier]:
    async with open_applier(settings) as applier:
        yield applier


def records(*messages: ScoreEvent | ControlEvent) -> list[IncomingEvent]:
    return [
        decode(0, offset, b"c1", message.model_dump_json().encode())
        for offset, message in enumerate(messages)
    ]


def _retries() -> float:
    return REGISTRY.get_sample_value("podium_ranker_batch_retries_total") or 0.0


def score(event_id: str, user: str, value: float, minutes: int = 0) -> ScoreEvent:
    ts = T0 + timedelta(minutes=minutes)
    return ScoreEvent(
        event_id=event_id, competition_id="c1", user_id=user, value=value, ts=ts, received_at=ts
    )


async def alltime(applier: BatchApplier) -> list[tuple[str, float]]:
    top = await applier.store.top("c1", "alltime", SortOrder.DESC, 0, 100)
    return [(entry.user_id, entry.score) for entry in top]


async def test_a_replayed_batch_rewrites_redis_from_the_stored_standings(
    applier: BatchApplier,
) -> None:
    first = records(score("e1", "u1", 10), score("e2", "u2", 20), score("e3", "u3", 15))
    plan = await applier.apply(first)
    assert len(plan.new_scores) == 3
    assert await alltime(applier) == [("u2", 20), ("u3", 15), ("u1", 10)]

    second = records(score("e4", "u1", 30, minutes=1))
    await applier.apply(second)
    # Redis lost the second write: it holds batch 1's standing and marker (an older snapshot)
    await rewind(applier, {"alltime": [StandingWrite("u1", 10, T0)]}, to_version=1)
    replay = await applier.apply(second)
    assert replay.duplicates == 1
    assert replay.new_scores == []
    assert await alltime(applier) == [("u1", 30), ("u2", 20), ("u3", 15)]


async def rewind(
    applier: BatchApplier, writes: dict[str, list[StandingWrite]], *, to_version: int
) -> None:
    """Make Redis hold ``writes`` and the marker ``to_version`` (an older or a newer state)."""
    (marker,) = await applier.store.built_markers(["c1"])
    assert marker is not None
    await applier.store.write("c1", SortOrder.DESC, writes, VersionStep(int(marker), to_version))


def _stale_boards(reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "podium_ranker_stale_boards_total", {"reason": reason, "found_by": "batch"}
        )
        or 0.0
    )


async def _pg_version(applier: BatchApplier) -> int:
    async with applier.pool.acquire() as connection:
        return await read_standings_version(connection, "c1")


async def test_a_board_behind_postgres_is_refused_and_rebuilt_by_the_next_batch(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    await applier.apply(records(score("e1", "u1", 10), score("e2", "u2", 20)))
    await applier.apply(records(score("e3", "u1", 30, minutes=1)))
    assert await _pg_version(applier) == 2
    assert await applier.store.built_markers(["c1"]) == ["2"]
    # Redis came back from a snapshot taken after batch 1: u1 at 10, marker 1
    await rewind(applier, {"alltime": [StandingWrite("u1", 10, T0)]}, to_version=1)
    behind_before = _stale_boards("behind")
    await applier.apply(records(score("e4", "u3", 5)))  # another user only
    assert _stale_boards("behind") == behind_before + 1
    assert await alltime(applier) == [("u1", 30), ("u2", 20), ("u3", 5)]
    assert await applier.store.built_markers(["c1"]) == [str(await _pg_version(applier))] == ["3"]
    last = (await _changes(settings))[-1]
    assert last.rebuilt
    assert [(c.user_id, c.rank) for c in last.windows[0].changed] == [("u3", 3)]
    assert [(e.user_id, e.score) for e in last.windows[0].top] == [
        ("u1", 30),
        ("u2", 20),
        ("u3", 5),
    ]
    first, second, _ = await _changes(settings)
    assert not first.rebuilt  # the first batch builds the new board with its own write
    assert not second.rebuilt


async def test_a_board_ahead_of_postgres_is_refused_and_rebuilt_by_the_next_batch(
    applier: BatchApplier,
) -> None:
    await applier.apply(records(score("e1", "u1", 10)))
    # a failed attempt wrote Redis (a phantom standing, marker 2) and PostgreSQL rolled back
    await rewind(applier, {"alltime": [StandingWrite("ghost", 99, T0)]}, to_version=2)
    ahead_before = _stale_boards("ahead")
    await applier.apply(records(score("e2", "u2", 20)))
    assert _stale_boards("ahead") == ahead_before + 1
    assert await alltime(applier) == [("u2", 20), ("u1", 10)]
    assert await applier.store.built_markers(["c1"]) == ["2"]


async def test_versions_keep_increasing_after_redis_comes_back_with_an_older_counter(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    counter = version_key(applier.store.prefix, "c1")
    await applier.apply(records(score("e1", "u1", 10)))
    older = await applier.store.redis.get(counter)  # what a snapshot taken now holds
    assert older is not None
    for index in range(2, 5):
        await applier.apply(records(score(f"e{index}", "u1", 10 + index)))
    await applier.store.redis.set(counter, older)  # restarted from that snapshot
    await applier.apply(records(score("e5", "u1", 20)))
    # a counter that ran ahead of the clock (over a batch per millisecond) still increases
    ahead = int(time.time() * 1000) + 60_000
    await applier.store.redis.set(counter, ahead)
    await applier.apply(records(score("e6", "u1", 21)))
    versions = [change.version for change in await _changes(settings)]
    assert len(versions) == 6
    assert versions == sorted(set(versions))
    assert versions[-1] == ahead + 1


async def test_removal_closes_ranks_up_and_is_announced(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    await applier.apply(
        records(score("e1", "u1", 10), score("e2", "u2", 20), score("e3", "u3", 15))
    )
    removal = ControlEvent(
        event_id="k1",
        action=ControlAction.REMOVE_USER,
        competition_id="c1",
        user_id="u2",
        received_at=T0,
    )
    await applier.apply(records(removal))
    assert await alltime(applier) == [("u3", 15), ("u1", 10)]
    changes = [
        ChangeMessage.model_validate_json(record.value)
        for record in await read_topic(settings, settings.topic_changes)
    ]
    first, second = (change.version for change in changes)
    assert second > first
    window = changes[-1].windows[0]
    assert window.window == "alltime"
    assert [(c.user_id, c.score, c.rank) for c in window.changed] == [("u2", None, None)]
    assert window.total == 2
    assert window.top_changed
    assert [(e.rank, e.user_id) for e in window.top] == [(1, "u3"), (2, "u1")]


async def test_versions_keep_increasing_after_redis_loses_the_counter(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    await applier.apply(records(score("e1", "u1", 10)))
    await applier.apply(records(score("e2", "u1", 11)))
    await applier.store.drop("c1")  # the counter and the leaderboard are gone
    await applier.apply(records(score("e3", "u1", 12)))
    versions = [
        ChangeMessage.model_validate_json(record.value).version
        for record in await read_topic(settings, settings.topic_changes)
    ]
    assert versions == sorted(set(versions))
    assert await alltime(applier) == [("u1", 12)]


async def test_redis_unavailable_retries_the_batch_until_it_applies(
    settings_factory: SettingsFactory,
    settings: PlatformSettings,
    artifacts_dir: Path,
    tmp_path: Path,
) -> None:
    with private_redis(tmp_path, artifacts_dir / "ranker-applier-redis.log") as server:
        hung_settings = settings_factory(
            redis_url=server.url, ranker_retry_max_backoff_s=0.2, redis_timeout_s=0.5
        )
        pool: asyncpg.Pool = await create_pool(settings)
        redis: Redis = create_redis(hung_settings)
        producer = create_producer(settings)
        await producer.start()
        try:
            await create_competition(pool, CompetitionCreate(id="c1", name="c1"))
            applier = BatchApplier(hung_settings, pool, redis, producer)
            retries_before = _retries()
            server.freeze()
            applying = asyncio.create_task(
                applier.apply_with_retries(records(score("e1", "u1", 10), score("e2", "u2", 5)))
            )
            while _retries() < retries_before + 2:
                await asyncio.sleep(0.05)
            # nothing was applied: the PostgreSQL transaction rolled back with the Redis failure
            assert await pool.fetchval("SELECT count(*) FROM score_events") == 0
            assert not applying.done()
            server.thaw()
            await asyncio.wait_for(applying, 30)
            assert await alltime(applier) == [("u1", 10), ("u2", 5)]
            assert await pool.fetchval("SELECT count(*) FROM score_events") == 2
        finally:
            await producer.stop()
            await redis.aclose()
            await pool.close()


async def _changes(settings: PlatformSettings) -> list[ChangeMessage]:
    return [
        ChangeMessage.model_validate_json(record.value)
        for record in await read_topic(settings, settings.topic_changes)
    ]


async def test_change_messages_carry_the_top_after_the_write_and_whether_it_changed(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    top2 = BatchApplier(
        settings.model_copy(update={"ranker_top_n": 2}),
        applier.pool,
        applier.store.redis,
        applier.producer,
    )
    await top2.apply(records(score("e1", "u1", 30), score("e2", "u2", 20), score("e3", "u3", 10)))
    await top2.apply(records(score("e4", "u3", 15)))  # below the top 2: top unchanged
    await top2.apply(records(score("e5", "u3", 25)))  # into the top 2
    first, below, into = (change.windows[0] for change in await _changes(settings))
    assert first.top_changed
    assert [(e.rank, e.user_id, e.score) for e in first.top] == [(1, "u1", 30), (2, "u2", 20)]
    assert not below.top_changed
    assert [(c.user_id, c.score, c.rank) for c in below.changed] == [("u3", 15, 3)]
    assert [(e.user_id, e.score) for e in below.top] == [("u1", 30), ("u2", 20)]
    assert into.top_changed
    assert [(e.user_id, e.score) for e in into.top] == [("u1", 30), ("u3", 25)]
    assert into.total == 3


async def test_one_batch_over_several_competitions_rebuilds_only_the_lost_one(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    await create_competition(
        applier.pool, CompetitionCreate(id="c2", name="c2", sort_order=SortOrder.ASC)
    )
    c2 = ScoreEvent(
        event_id="f1", competition_id="c2", user_id="u9", value=3.5, ts=T0, received_at=T0
    )
    await applier.apply(records(score("e1", "u1", 10), c2))
    await applier.store.drop("c2")  # Redis lost c2 only
    c2_again = c2.model_copy(update={"event_id": "f2", "user_id": "u8", "value": 1.5})
    plan = await applier.apply(records(score("e2", "u2", 20), c2_again))
    assert len(plan.new_scores) == 2
    assert await alltime(applier) == [("u2", 20), ("u1", 10)]
    c2_top = await applier.store.top("c2", "alltime", SortOrder.ASC, 0, 10)
    assert [(e.user_id, e.score) for e in c2_top] == [("u8", 1.5), ("u9", 3.5)]
    last: dict[str, ChangeMessage] = {}
    for change in sorted(await _changes(settings), key=lambda change: change.version):
        last[change.competition_id] = change  # records come in partition order
    c1_window, c2_window = last["c1"].windows[0], last["c2"].windows[0]
    assert [(c.user_id, c.rank) for c in c1_window.changed] == [("u2", 1)]
    assert c1_window.top_changed
    assert [(c.user_id, c.score, c.rank) for c in c2_window.changed] == [("u8", 1.5, 1)]
    assert c2_window.top_changed  # rebuilt: reported as changed
    assert c2_window.total == 2
    assert [(e.rank, e.user_id) for e in c2_window.top] == [(1, "u8"), (2, "u9")]


async def test_postgresql_keeps_exact_values_times_and_metadata(applier: BatchApplier) -> None:
    plus_two = timezone(timedelta(hours=2))
    ts = datetime(2026, 11, 25, 14, 0, 0, 123457, tzinfo=plus_two)
    values = [0.1 + 0.2, 1e-300, 2.5e300, -0.0]
    events = [
        ScoreEvent(
            event_id=f"x{index}",
            competition_id="c1",
            user_id=f"u{index}",
            value=value,
            ts=ts + timedelta(microseconds=index),
            received_at=ts,
            metadata={"note": 'line\nbreak "quoted"', "n": index},
        )
        for index, value in enumerate(values)
    ]
    await applier.apply(records(*events))
    rows = await applier.pool.fetch(
        "SELECT event_id, value, event_ts, received_at, metadata FROM score_events"
        " ORDER BY event_id"
    )
    assert [(r["value"], r["event_ts"], r["received_at"], r["metadata"]) for r in rows] == [
        (e.value, e.ts, e.received_at, e.metadata) for e in events
    ]
    standings = await applier.pool.fetch(
        "SELECT user_id, score, reached_at, last_event_ts FROM standings ORDER BY user_id"
    )
    assert [tuple(row) for row in standings] == [(e.user_id, e.value, e.ts, e.ts) for e in events]


async def test_a_dead_letter_keeps_the_original_headers_and_its_line_names_the_request(
    applier: BatchApplier, settings: PlatformSettings, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #13: the dead letter carries the record's own headers (request id, producer,
    trace context) before the ranker's, and the ranker's lines about each event (the dead
    letter at WARNING, applied and duplicate at DEBUG) name its request id and trace id."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01".encode()
    origin = [("producer", b"game"), ("request_id", b"req-13"), ("traceparent", traceparent)]
    unknown = score("e-unknown", "u1", 1).model_copy(update={"competition_id": "nope"})
    batch = [
        decode(0, 0, b"nope", unknown.model_dump_json().encode(), origin),
        decode(0, 1, b"c1", score("e1", "u1", 5).model_dump_json().encode(), origin),
        decode(0, 2, b"c1", score("e1", "u1", 5).model_dump_json().encode(), origin),
    ]
    with caplog.at_level("DEBUG", logger="services.ranker.applier"):
        await applier.apply_with_retries(batch)

    letters = await read_topic(settings, settings.topic_dead_letters)
    assert len(letters) == 1
    headers = list(letters[0].headers)
    assert headers[:3] == origin
    assert ("reason", b"unknown_competition") in headers
    lines = {
        (record.event_id, record.outcome): record  # type: ignore[attr-defined]
        for record in caplog.records
        if hasattr(record, "outcome")
    }
    assert set(lines) == {
        ("e-unknown", "dead_letter"),
        ("e1", "applied"),
        ("e1", "duplicate"),
    }
    for record in lines.values():
        assert record.request_id == "req-13"  # type: ignore[attr-defined]
        assert record.trace_id == trace_id  # type: ignore[attr-defined]
    assert lines["e-unknown", "dead_letter"].levelname == "WARNING"


async def test_the_batch_statements_are_planned_for_the_tables_as_they_are_now(
    settings: PlatformSettings,
) -> None:
    """Every execution of a batch's statements gets a plan for the table's size now.

    With PostgreSQL's default plan cache a statement run often enough switches to one cached
    generic plan; made while a week partition of score_events was small, that plan scanned the
    partition whole for every id of the array, and kept doing so as it grew (a 2,000-id lookup
    took 15 ms with a fresh plan and 3 s at 60,000 rows; the bench's 5,000 events/s phase
    stalled on it). ``PODIUM_DB_PLAN_CACHE_MODE`` (force_custom_plan) is what prevents it; the
    test reads PostgreSQL's own count of the plans each prepared statement used.
    """
    one_connection = settings.model_copy(update={"db_pool_min": 1, "db_pool_max": 1})
    async with open_applier(one_connection) as applier:
        batches = 8  # PostgreSQL weighs a generic plan from the sixth execution on
        for n in range(batches):
            # batches of many ids: a custom plan for them looks dearer than a generic one
            await applier.apply(records(*(score(f"e{n}-{k}", f"u{k}", n) for k in range(200))))
        plans = await applier.pool.fetch(
            "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
            # the batch's state read, which holds the dedup lookup of the event ids
            " WHERE statement LIKE 'SELECT (SELECT pruned_before%'"
        )
    assert len(plans) == 1, plans
    assert plans[0]["custom_plans"] >= batches
    assert plans[0]["generic_plans"] == 0


async def _jit_in_state_read(connection: asyncpg.Connection, *, batch: bool) -> bool:
    """Whether PostgreSQL JIT-compiles a batch's state read (with sequential scans off: as a
    batch has it, through :func:`begin_batch` when ``batch``, else by hand)."""
    async with connection.transaction():
        if batch:
            await begin_batch(connection, ["c1"])
        else:
            await connection.execute("SET LOCAL enable_seqscan = off")
        plan = await connection.fetch(
            f"EXPLAIN ANALYZE {BATCH_STATE_SQL}", ["e1"], [], ["c1"], ["u1"], ["c1"]
        )
    return any(row[0].startswith("JIT:") for row in plan)


async def test_no_batch_statement_is_jit_compiled(settings: PlatformSettings) -> None:
    """With sequential scans off, the one-row watermark read costs PostgreSQL 10^10 and, with
    JIT on (its default), was compiled with LLVM on every batch: ~8 ms of the backend's CPU
    for a 0.03 ms read (66-117 ms for a backend's first batch). ``begin_batch`` turns JIT off
    for the batch's transaction."""
    async with open_applier(settings) as applier, applier.pool.acquire() as connection:
        connection = cast(asyncpg.Connection, connection)
        if await connection.fetchval("SELECT pg_jit_available()") and (
            await connection.fetchval("SHOW jit") == "on"
        ):  # a server that can JIT does so without the batch's settings
            assert await _jit_in_state_read(connection, batch=False)
        assert not await _jit_in_state_read(connection, batch=True)


async def _scans(pool: asyncpg.Pool, schema: str) -> dict[str, tuple[int, int, int]]:
    """(sequential scans, index scans, index entries read) so far of score_events' partitions,
    standings, standings_versions and competitions (not of score_events_pruned: one row, read
    whole by design)."""
    rows = await pool.fetch(
        "SELECT relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan,"
        " coalesce(idx_tup_fetch, 0) AS idx_read FROM pg_stat_user_tables"
        " WHERE schemaname = $1 AND (relname LIKE 'score\\_events\\_w%' OR relname IN"
        " ('score_events_default', 'standings', 'standings_versions', 'competitions'))",
        schema,
    )
    return {row["relname"]: (row["seq_scan"], row["idx_scan"], row["idx_read"]) for row in rows}


async def test_a_batch_looks_rows_up_by_index_in_tables_postgresql_has_not_analyzed(
    settings: PlatformSettings,
) -> None:
    """A batch's lookups use the indexes even where PostgreSQL has no statistics.

    Unanalyzed (a new week partition; any table with autovacuum off), a table looks to the
    planner as if every row matched a lookup of many keys, so it scanned all of them per batch:
    the bench's week partition (230,000 events) cost 150-300 ms per batch, growing. The batch
    transaction turns sequential scans off (:func:`begin_batch`); PostgreSQL's own
    counters show which scans a batch made.
    """
    async with open_applier(settings) as applier:
        await applier.pool.execute(
            "INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts,"
            " received_at) SELECT 'old-' || g, 'c1', 'u' || (g % 500), g, $1, $1"
            " FROM generate_series(1, 20000) AS g",
            T0,
        )
        await applier.pool.execute(
            "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
            " last_event_ts) SELECT 'c' || (g % 40), 'alltime', 'u' || g, g, $1, $1"
            " FROM generate_series(1, 80000) AS g",
            T0,
        )
        before = await _scans(applier.pool, settings.db_schema)
        await applier.apply(records(*(score(f"new-{k}", f"u{k}", k) for k in range(3000))))
        after = before
        deadline = time.monotonic() + 10
        while after == before and time.monotonic() < deadline:  # stats land when idle
            await asyncio.sleep(0.2)
            after = await _scans(applier.pool, settings.db_schema)
    assert after != before, "no scans counted"
    sequential = {
        name: after[name][0] - before.get(name, (0, 0, 0))[0]
        for name in after
        if after[name][0] != before.get(name, (0, 0, 0))[0]
    }
    assert sequential == {}, f"batch scanned tables whole: {sequential}"
    assert any(after[name][1] > before.get(name, (0, 0, 0))[1] for name in after)
    # a nested loop reads the index entries of the batch's pairs only (a merge join: 4,001)
    standings_read = after["standings"][2] - before.get("standings", (0, 0, 0))[2]
    assert standings_read < 1_000, f"the standings read went through {standings_read} rows"


async def test_a_common_batch_is_five_postgresql_statements(settings: PlatformSettings) -> None:
    """A batch of scores for a built competition without teams or tournaments talks to
    PostgreSQL in five statements: BEGIN, the locks (:func:`begin_batch`), the state read
    (competitions included, ``BATCH_STATE_SQL``), the write, COMMIT. Each statement is a round
    trip a loaded machine makes the batch wait for (its scheduling, then PostgreSQL's).

    One pooled connection, so the second batch finds its statements prepared (a connection's
    first use of a statement adds asyncpg's type introspection). Not counted: asyncpg's reset
    of a connection released to the pool (``RESET ALL`` and the rest, one statement)."""
    single = override(settings, db_pool_min=1, db_pool_max=1)
    async with open_applier(single) as applier:
        await applier.apply(records(score("e1", "u1", 10)))  # builds the board: more statements
        statements: list[str] = []
        async with applier.pool.acquire() as connection:
            connection.add_query_logger(lambda logged: statements.append(logged.query))
        plan = await applier.apply(records(score("e2", "u2", 20), score("e3", "u1", 30, minutes=1)))
        assert len(plan.new_scores) == 2
        assert await alltime(applier) == [("u1", 30), ("u2", 20)]
    batch = [query for query in statements if "RESET ALL" not in query]
    assert len(batch) == 5, batch
    assert batch[2] == BATCH_STATE_SQL


async def test_a_batch_applies_the_competition_as_it_is_now_even_when_edited_behind_its_back(
    applier: BatchApplier,
) -> None:
    """Batches reuse the models of competition rows they read before (by row version); an edit
    through the API and a direct SQL edit that leaves ``updated_at`` alone are both seen by
    the next batch."""
    await applier.apply(records(score("e1", "u1", 50)))
    await update_competition(applier.pool, "c1", CompetitionUpdate(max_value=100))
    plan = await applier.apply(records(score("e2", "u2", 500, minutes=1)))
    assert [letter.reason for letter in plan.dead_letters] == [DeadLetterReason.BAD_VALUE]
    await applier.pool.execute("UPDATE competitions SET max_value = NULL WHERE id = 'c1'")
    plan = await applier.apply(records(score("e3", "u2", 500, minutes=2)))
    assert plan.dead_letters == []
    assert await alltime(applier) == [("u2", 500), ("u1", 50)]


async def test_a_team_board_version_follows_its_batches(applier: BatchApplier) -> None:
    """The state read finds a team board's standings version by the board's id (the
    competition's id and ``~teams``, in SQL): each batch moves it on by one and the board's
    Redis copy is never found stale."""
    await create_competition(
        applier.pool,
        CompetitionCreate(id="t1", name="t1", teams=TeamsSetting(aggregate=TeamAggregate.SUM)),
    )

    def team_score(event_id: str, user: str, value: float, minutes: int) -> ScoreEvent:
        ts = T0 + timedelta(minutes=minutes)
        return ScoreEvent(
            event_id=event_id, competition_id="t1", user_id=user, value=value, ts=ts,
            received_at=ts, team_id="red",
        )  # fmt: skip

    board = team_board_id("t1")
    stale_before = _stale_boards("behind") + _stale_boards("ahead")
    for batch in range(1, 4):
        event = team_score(f"t{batch}", f"u{batch}", 10.0 * batch, batch)
        plan = await applier.apply([decode(0, batch, b"t1", event.model_dump_json().encode())])
        assert len(plan.new_scores) == 1
        async with applier.pool.acquire() as connection:
            assert await read_standings_version(connection, board) == batch
    assert _stale_boards("behind") + _stale_boards("ahead") == stale_before
