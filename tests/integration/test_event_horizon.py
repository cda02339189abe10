"""Issue #18, the bounded system of record: the dedup horizon, weekly ``score_events``
partitions and ``podium prune``, against the real PostgreSQL, Redis and broker."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from podium.ops.prune import describe, prune
from podium.settings import PlatformSettings
from services.ingest.app import create_app
from services.ranker.applier import BatchApplier, decode
from services.ranker.planner import IncomingEvent
from services.ranker.repository import begin_batch
from services.ranker.runtime import create_partitions
from services.ranker.settings import RankerSettings
from shared import migrations
from shared.competitions import create_competition
from shared.db import create_pool
from shared.event_partitions import (
    DEFAULT_PARTITION,
    LOCK_ID,
    LOCK_KEYS,
    PARTITION_WIDTH,
    PRUNE_GRACE,
    PRUNED_BEFORE_SQL,
    WEEKS_AHEAD,
    partition_name,
    week_partitions,
    week_start,
)
from shared.kafka import create_producer
from shared.redis_client import create_redis
from shared.schemas.competition import CompetitionCreate, Operator
from shared.schemas.score_event import ScoreEvent
from tests.conftest import SettingsFactory
from tests.support.servers import podium_command, process_environment, running_app
from tests.support.topic_reader import read_topic

HORIZON = timedelta(days=30)  # the default PODIUM_DEDUP_HORIZON_DAYS


@pytest.fixture
async def applier(settings: PlatformSettings) -> AsyncIterator[BatchApplier]:
    pool: asyncpg.Pool = await create_pool(settings)
    redis = create_redis(settings)
    producer: AIOKafkaProducer = create_producer(settings)
    await producer.start()
    try:
        # a sum competition: an event applied twice would show in the score
        await create_competition(pool, CompetitionCreate(id="c1", name="c1", operator=Operator.SUM))
        yield BatchApplier(settings, pool, redis, producer)
    finally:
        await producer.stop()
        await redis.aclose()
        await pool.close()


def score(event_id: str, value: float, ts: datetime, received_at: datetime) -> ScoreEvent:
    return ScoreEvent(
        event_id=event_id,
        competition_id="c1",
        user_id="u1",
        value=value,
        ts=ts,
        received_at=received_at,
    )


def records(*messages: ScoreEvent) -> list[IncomingEvent]:
    return [
        decode(0, offset, b"c1", message.model_dump_json().encode())
        for offset, message in enumerate(messages)
    ]


async def sum_score(pool: asyncpg.Pool) -> float | None:
    value: float | None = await pool.fetchval(
        "SELECT score FROM standings WHERE competition_id = 'c1' AND window_label = 'alltime'"
        " AND user_id = 'u1'"
    )
    return value


async def dead_letter_reasons(settings: PlatformSettings) -> list[tuple[str, bytes]]:
    letters = await read_topic(settings, settings.topic_dead_letters)
    return [
        (ScoreEvent.model_validate_json(letter.value).event_id, dict(letter.headers)["reason"])
        for letter in letters
    ]


async def test_ingest_refuses_an_event_older_than_the_horizon(
    settings: PlatformSettings, token_for: Callable[..., str]
) -> None:
    """422 naming ``ts`` and ``beyond_dedup_horizon``; a batch rejects only that item; an
    event just inside the horizon is accepted."""
    now = datetime.now(UTC)
    writer = {"Authorization": f"Bearer {token_for('game', 'scores:write:any')}"}
    admin = {"Authorization": f"Bearer {token_for('ops', 'admin')}"}
    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        created = await client.post(
            "/api/v1/competitions", json={"id": "c1", "name": "Cup"}, headers=admin
        )
        assert created.status_code == 201, created.text

        def event(event_id: str, ts: datetime) -> dict[str, object]:
            return {
                "event_id": event_id,
                "competition_id": "c1",
                "user_id": "u1",
                "value": 1,
                "ts": ts.isoformat(),
            }

        too_old = now - HORIZON - timedelta(minutes=5)
        inside = now - HORIZON + timedelta(minutes=5)
        refused = await client.post("/api/v1/scores", json=event("old", too_old), headers=writer)
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert error["code"] == "event_rejected"
        assert error["details"] == {"reason": "beyond_dedup_horizon", "field": "ts"}
        assert "PODIUM_DEDUP_HORIZON_DAYS" in error["message"]

        batch = await client.post(
            "/api/v1/scores/batch",
            json={"events": [event("old", too_old), event("in", inside)]},
            headers=writer,
        )
        assert batch.status_code == 202, batch.text
        results = batch.json()["results"]
        assert results[0]["status"] == "rejected"
        assert (results[0]["reason"], results[0]["field"]) == (
            "beyond_dedup_horizon",
            "events.0.ts",
        )
        assert results[1]["status"] == "accepted"
    published = await read_topic(settings, settings.topic_score_events)
    assert len(published) == 1  # only the event inside the horizon


async def test_the_ranker_dead_letters_a_record_beyond_the_horizon(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    """A record produced straight to the topic (ingest never saw it) with a ``ts`` older than
    its ``received_at`` minus the horizon: the same rule as ingest, so replays agree."""
    now = datetime.now(UTC)
    old = score("e-old", 5, now - HORIZON - timedelta(seconds=1), now)
    edge = score("e-edge", 7, now - HORIZON, now)  # exactly at the horizon: accepted
    plan = await applier.apply_with_retries(records(old, edge))
    assert [message.event_id for message in plan.new_scores] == ["e-edge"]
    assert await sum_score(applier.pool) == 7
    assert await dead_letter_reasons(settings) == [("e-old", b"beyond_dedup_horizon")]


async def test_an_applied_event_replayed_after_its_row_was_pruned_is_not_applied_again(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    """Accepted and applied 40 days ago, its row pruned since: a replay of the record (a
    consumer reset, a record that waited in the topic) is dead-lettered, never counted twice;
    it is judged by the watermark the prune raised, read in the batch's transaction."""
    now = datetime.now(UTC)
    then = now - timedelta(days=40)
    event = score("e-then", 3, then, then)
    plan = await applier.apply_with_retries(records(event))
    assert len(plan.new_scores) == 1
    assert await sum_score(applier.pool) == 3

    report = await prune(settings, now=now)
    assert report.pruned_before == week_start(now - HORIZON - PRUNE_GRACE)
    assert report.deleted_default_rows == 1  # the test schema had no weeks yet: DEFAULT
    assert await applier.pool.fetchval("SELECT count(*) FROM score_events") == 0

    replayed = await applier.apply_with_retries(records(event))
    assert replayed.new_scores == []
    assert await sum_score(applier.pool) == 3
    assert await dead_letter_reasons(settings) == [("e-then", b"beyond_dedup_horizon")]


async def test_dedup_is_by_event_id_across_a_partition_boundary(
    applier: BatchApplier, settings: PlatformSettings
) -> None:
    """The same event_id with a ``ts`` in the next week (a retry without ``ts`` gets a new
    receive time as its ``ts``) is a duplicate, in a later batch and within one batch."""
    now = datetime.now(UTC)
    await prune(settings, now=now)  # the weeks exist: rows land in them, not in DEFAULT
    boundary = week_start(now)
    first = score("e1", 4, boundary - timedelta(microseconds=1), boundary)
    retry = score("e1", 4, boundary, boundary + timedelta(seconds=1))
    await applier.apply_with_retries(records(first))
    plan = await applier.apply_with_retries(records(retry))
    assert (plan.new_scores, plan.duplicates) == ([], 1)
    both = await applier.apply_with_retries(
        records(
            score("e2", 1, boundary, boundary), score("e2", 1, boundary - PARTITION_WIDTH, boundary)
        )
    )
    assert (len(both.new_scores), both.duplicates) == (1, 1)
    assert await sum_score(applier.pool) == 5
    rows = await applier.pool.fetch(
        "SELECT event_id, tableoid::regclass::text AS part FROM score_events ORDER BY 1"
    )
    assert [(row["event_id"], row["part"]) for row in rows] == [
        ("e1", partition_name(boundary - PARTITION_WIDTH)),
        ("e2", partition_name(boundary)),
    ]


async def test_prune_drops_old_weeks_keeps_recent_ones_and_is_idempotent(
    settings: PlatformSettings, pool: asyncpg.Pool
) -> None:
    t0 = datetime.now(UTC)
    created = await prune(settings, now=t0)
    first_week = week_start(t0 - HORIZON - PRUNE_GRACE)
    last_week = week_start(t0) + WEEKS_AHEAD * PARTITION_WIDTH
    assert created.created[0] == partition_name(first_week)
    assert created.created[-1] == partition_name(last_week)
    assert created.dropped == []
    ages = {"old": timedelta(days=30), "mid": timedelta(days=10), "new": timedelta(0)}
    await pool.executemany(
        "INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts,"
        " received_at) VALUES ($1, 'c', 'u', 1, $2, $2)",
        [(event_id, t0 - age) for event_id, age in ages.items()],
    )
    in_default = await pool.fetchval(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
    assert in_default == 0

    later = t0 + timedelta(days=15)  # cutoff t0 - 16 d: "old" (30 d) goes, "mid" (10 d) stays
    reports = await asyncio.gather(prune(settings, now=later), prune(settings, now=later))
    watermark = week_start(later - HORIZON - PRUNE_GRACE)
    expected_drops = sorted(
        name
        for name in created.kept
        if datetime.strptime(name[-8:], "%Y%m%d").replace(tzinfo=UTC) + PARTITION_WIDTH <= watermark
    )
    assert expected_drops  # the test spans enough weeks to drop some
    assert sorted(reports[0].dropped + reports[1].dropped) == expected_drops
    assert [] in (reports[0].dropped, reports[1].dropped)  # one run did it, the other found it done
    left = {row["event_id"] for row in await pool.fetch("SELECT event_id FROM score_events")}
    assert left == {"mid", "new"}
    assert partition_name(week_start(later) + WEEKS_AHEAD * PARTITION_WIDTH) in reports[0].kept
    assert await pool.fetchval("SELECT pruned_before FROM score_events_pruned") == watermark

    again = await prune(settings, now=later)
    assert (again.dropped, again.created, again.deleted_default_rows) == ([], [], 0)
    assert describe(again)[0] == f"event rows before {watermark.isoformat()} are pruned"


async def test_the_migration_converts_a_populated_table(
    settings_factory: SettingsFactory, unique_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows written under migrations 0001-0004 survive 0005 unchanged (in DEFAULT), and the
    first prune moves the recent one into its week and deletes the one beyond the horizon."""
    settings = settings_factory(db_schema=f"t_{unique_id}_m5")
    before_0005 = [m for m in migrations.available_migrations() if m.version < 5]
    url = settings.database_url.get_secret_value()
    connection = await asyncpg.connect(url)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(migrations, "available_migrations", lambda: before_0005)
            assert await migrations.apply_migrations(connection, settings.db_schema) == [1, 2, 3, 4]
        now = datetime.now(UTC).replace(microsecond=0)
        rows = [
            ("e-old", "c", "u1", 1.5, datetime(2020, 1, 1, tzinfo=UTC), '{"a": 1}'),
            ("e-new", "c", "u2", 2.5, now - timedelta(days=2), "{}"),
            ("e-future", "c", "u3", 3.5, datetime(2100, 1, 1, tzinfo=UTC), "{}"),
        ]
        await connection.executemany(
            "INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts,"
            " received_at, metadata) VALUES ($1, $2, $3, $4, $5, $5, $6::jsonb)",
            rows,
        )
        query = "SELECT * FROM score_events ORDER BY event_id"
        stored = [tuple(row) for row in await connection.fetch(query)]

        up_to_0005 = [m for m in migrations.available_migrations() if m.version <= 5]
        with monkeypatch.context() as patch:
            patch.setattr(migrations, "available_migrations", lambda: up_to_0005)
            assert await migrations.apply_migrations(connection, settings.db_schema) == [5]
        assert [tuple(row) for row in await connection.fetch(query)] == stored
        kind = await connection.fetchval(
            "SELECT relkind::text FROM pg_class WHERE oid = 'score_events'::regclass"
        )
        assert kind == "p"  # partitioned
        # the later ones keep the rows too (0006 adds team_id, null for every stored event)
        assert await migrations.apply_migrations(connection, settings.db_schema) == [6]
        assert [tuple(row) for row in await connection.fetch(query)] == [
            (*row, None) for row in stored
        ]

        report = await prune(settings, now=now)
        assert (report.moved_rows, report.deleted_default_rows) == (1, 1)
        placed = {
            row["event_id"]: row["part"]
            for row in await connection.fetch(
                "SELECT event_id, tableoid::regclass::text AS part FROM score_events"
            )
        }
        assert placed == {
            "e-new": partition_name(week_start(now - timedelta(days=2))),
            "e-future": DEFAULT_PARTITION,
        }
    finally:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE')
        await connection.close()


async def test_a_ranker_creates_the_coming_weeks_at_start_up_and_never_blocks_on_it(
    settings: PlatformSettings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    ranker_settings = RankerSettings(
        **settings.model_dump(include=set(RankerSettings.model_fields))
    )
    async with pool.acquire() as holder:  # a prune in progress holds the maintenance lock
        await holder.execute(f"SELECT pg_advisory_lock({LOCK_KEYS})", LOCK_ID)
        try:
            with caplog.at_level("WARNING", logger="services.ranker.runtime"):
                await create_partitions(ranker_settings, pool)  # gives up after lock_timeout
        finally:
            await holder.execute(f"SELECT pg_advisory_unlock({LOCK_KEYS})", LOCK_ID)
    assert "could not create score_events partitions" in caplog.text
    async with pool.acquire() as connection:
        assert await week_partitions(connection) == {}

    await create_partitions(ranker_settings, pool)
    async with pool.acquire() as connection:
        weeks = await week_partitions(connection)
    now = datetime.now(UTC)
    assert partition_name(week_start(now)) in weeks
    assert partition_name(week_start(now) + WEEKS_AHEAD * PARTITION_WIDTH) in weeks
    assert await pool.fetchval("SELECT pruned_before FROM score_events_pruned") == datetime(
        1970, 1, 1, tzinfo=UTC
    )  # creating never prunes


def test_podium_prune_reports_what_it_did(settings: PlatformSettings) -> None:
    result = subprocess.run(
        podium_command("prune"),
        env=process_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    now = datetime.now(UTC)
    watermark = week_start(now - HORIZON - PRUNE_GRACE)
    weeks = (week_start(now) + WEEKS_AHEAD * PARTITION_WIDTH - watermark) // PARTITION_WIDTH + 1
    assert lines[0] == f"event rows before {watermark.isoformat()} are pruned"
    assert lines[1] == "dropped 0 partition(s): -"
    assert lines[2].startswith(f"created {weeks} partition(s): {partition_name(watermark)}, ")


async def test_a_prune_waits_for_a_batch_that_holds_the_partitions(
    settings: PlatformSettings, pool: asyncpg.Pool
) -> None:
    """The protocol that keeps dedup exact: while a ranker batch's transaction holds the
    partitions (it read the watermark and is looking ids up), no prune drops a row; the prune
    goes ahead once the batch commits."""
    now = datetime.now(UTC)
    await pool.execute(
        "INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts,"
        " received_at) VALUES ('old', 'c', 'u', 1, $1, $1)",
        now - timedelta(days=60),
    )
    async with pool.acquire() as batch:
        transaction = batch.transaction()
        await transaction.start()
        await begin_batch(batch, ["c"])  # a batch's first statement, then its read
        watermark = await batch.fetchval(PRUNED_BEFORE_SQL)
        pruning = asyncio.create_task(prune(settings, now=now))
        done, _ = await asyncio.wait({pruning}, timeout=1.0)
        assert not done  # blocked on the batch's shared lock, however fast the machine is
        assert await batch.fetchval("SELECT count(*) FROM score_events") == 1
        assert await batch.fetchval("SELECT pruned_before FROM score_events_pruned") == watermark
        await transaction.commit()
    report = await pruning
    assert report.deleted_default_rows == 1


async def _partition_locks_of(pool: asyncpg.Pool, pid: int) -> list[str]:
    """The modes of the partition lock (:data:`LOCK_ID`) the backend ``pid`` holds."""
    rows = await pool.fetch(
        "SELECT mode FROM pg_locks WHERE locktype = 'advisory' AND pid = $1 AND granted"
        " AND classid = $2::int4::oid AND objsubid = 2",
        pid,
        LOCK_ID,
    )
    return [row["mode"] for row in rows]


async def test_a_batch_holds_the_partitions_only_after_its_competition_locks(
    pool: asyncpg.Pool,
) -> None:
    """A batch waiting for a competition lock holds no partition lock: a queued prune (which
    waits for every holder) could otherwise make the competition lock's holder, which needs
    the partitions too, wait behind it — a deadlock PostgreSQL would have to break."""
    async with pool.acquire() as first, pool.acquire() as second:
        first_batch, second_batch = first.transaction(), second.transaction()
        first_open = True
        await first_batch.start()
        await second_batch.start()
        try:
            await begin_batch(first, ["c"])
            assert await _partition_locks_of(pool, first.get_server_pid()) == ["ShareLock"]
            waiting = asyncio.create_task(begin_batch(second, ["c"]))
            done, _ = await asyncio.wait({waiting}, timeout=1.0)
            assert not done  # waits for c's lock ...
            assert await _partition_locks_of(pool, second.get_server_pid()) == []  # ... bare
            await first_batch.commit()
            first_open = False
            async with asyncio.timeout(10):
                await waiting  # ... then takes c's lock and the partitions
            assert await _partition_locks_of(pool, second.get_server_pid()) == ["ShareLock"]
        finally:
            await second_batch.rollback()
            if first_open:
                await first_batch.rollback()
