"""Tournament rules in the ranker, in-process against real PostgreSQL, Redis and the broker:
a score that reached the topic without its user joining, and attempts beyond the limit, are
dead-lettered; a removal gives the user fresh attempts; replays decide as the first pass."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from services.ranker.applier import BatchApplier, decode
from services.ranker.planner import IncomingEvent
from services.ranker.rules import DeadLetterReason
from shared import entrants
from shared.competitions import create_competition
from shared.db import create_pool
from shared.kafka import create_producer
from shared.redis_client import create_redis
from shared.schemas.competition import CompetitionCreate, ResetSchedule, SortOrder
from shared.schemas.score_event import ControlAction, ControlEvent, ScoreEvent

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.fixture
async def applier(settings: PlatformSettings) -> AsyncIterator[BatchApplier]:
    pool: asyncpg.Pool = await create_pool(settings)
    redis: Redis = create_redis(settings)
    producer: AIOKafkaProducer = create_producer(settings)
    await producer.start()
    try:
        await create_competition(
            pool,
            CompetitionCreate(
                id="cup",
                name="cup",
                reset=ResetSchedule.DAILY,
                join_required=True,
                max_attempts=2,
            ),
        )
        yield BatchApplier(settings, pool, redis, producer)
    finally:
        await producer.stop()
        await redis.aclose()
        await pool.close()


_offsets = iter(range(1_000_000))


def records(*messages: ScoreEvent | ControlEvent) -> list[IncomingEvent]:
    return [
        decode(0, next(_offsets), b"cup", message.model_dump_json().encode())
        for message in messages
    ]


def score(event_id: str, user: str, value: float, *, day: int = 0) -> ScoreEvent:
    ts = T0 + timedelta(days=day, minutes=int(event_id.strip("e") or 0))
    return ScoreEvent(
        event_id=event_id, competition_id="cup", user_id=user, value=value, ts=ts, received_at=ts
    )


def removal(event_id: str, user: str) -> ControlEvent:
    return ControlEvent(
        event_id=event_id,
        action=ControlAction.REMOVE_USER,
        competition_id="cup",
        user_id=user,
        received_at=T0,
    )


async def board(applier: BatchApplier, window: str = "alltime") -> list[tuple[str, float]]:
    top = await applier.store.top("cup", window, SortOrder.DESC, 0, 100)
    return [(entry.user_id, entry.score) for entry in top]


async def stored_attempts(applier: BatchApplier) -> dict[tuple[str, str, str], int]:
    rows = await applier.pool.fetch(
        "SELECT competition_id, window_label, user_id, attempts FROM attempts"
    )
    return {(r["competition_id"], r["window_label"], r["user_id"]): r["attempts"] for r in rows}


def reasons(plan: object) -> list[str]:
    return [dead.reason.value for dead in plan.dead_letters]  # type: ignore[attr-defined]


async def test_a_non_entrant_score_on_the_topic_is_dead_lettered_not_joined(
    applier: BatchApplier,
) -> None:
    await entrants.join(applier.pool, "cup", "alice", T0)
    plan = await applier.apply(records(score("e1", "alice", 10), score("e2", "mallory", 99)))
    assert reasons(plan) == [DeadLetterReason.NOT_JOINED.value]
    assert await board(applier) == [("alice", 10)]
    # the verdict is final for the event id: after mallory joins, a record of e2 (a producer
    # retry, or the batch replayed after a crash) is refused the same way; a new event counts
    await entrants.join(applier.pool, "cup", "mallory", T0)
    retried = await applier.apply(records(score("e2", "mallory", 99)))
    assert reasons(retried) == [DeadLetterReason.NOT_JOINED.value]
    assert await board(applier) == [("alice", 10)]
    fresh = await applier.apply(records(score("e3", "mallory", 98)))
    assert reasons(fresh) == []
    assert await board(applier) == [("mallory", 98), ("alice", 10)]


async def test_a_batch_replayed_after_its_removal_keeps_the_exhausted_attempt_refused(
    applier: BatchApplier,
) -> None:
    """A ranker that crashed after the commit but before committing offsets applies the
    batch again: the removal in it must not let the refused third attempt in."""
    await entrants.join(applier.pool, "cup", "alice", T0)
    batch = records(
        score("e1", "alice", 1),
        score("e2", "alice", 2),
        score("e3", "alice", 7),  # the third attempt of the day: refused
        removal("ctl-1", "alice"),
    )
    first = await applier.apply(batch)
    assert reasons(first) == [DeadLetterReason.ATTEMPTS_EXHAUSTED.value]
    replay = await applier.apply(batch)
    assert reasons(replay) == [DeadLetterReason.ATTEMPTS_EXHAUSTED.value]  # again, not applied
    assert replay.new_scores == []
    assert await board(applier) == []
    assert await stored_attempts(applier) == {}


async def test_attempts_beyond_the_limit_are_dead_lettered_per_period_and_replays_agree(
    applier: BatchApplier,
) -> None:
    await entrants.join(applier.pool, "cup", "alice", T0)
    batch = records(
        score("e1", "alice", 10),
        score("e1", "alice", 10),  # a producer retry: a duplicate is no attempt
        score("e2", "alice", 30),
        score("e3", "alice", 50),  # a third attempt on day 0
        score("e4", "alice", 20, day=1),  # a new period: fresh attempts
    )
    plan = await applier.apply(batch)
    assert reasons(plan) == [DeadLetterReason.ATTEMPTS_EXHAUSTED.value]
    assert plan.duplicates == 1
    day0, day1 = "2026-11-25", "2026-11-26"
    assert await stored_attempts(applier) == {
        ("cup", day0, "alice"): 2,
        ("cup", day1, "alice"): 1,
    }
    assert await board(applier) == [("alice", 30)]
    assert await board(applier, day0) == [("alice", 30)]
    # the whole batch again (a ranker that crashed before committing offsets)
    replay = await applier.apply(batch)
    assert replay.new_scores == []
    assert reasons(replay) == [DeadLetterReason.ATTEMPTS_EXHAUSTED.value]
    assert await stored_attempts(applier) == {
        ("cup", day0, "alice"): 2,
        ("cup", day1, "alice"): 1,
    }
    # across batches too
    later = await applier.apply(records(score("e5", "alice", 90)))
    assert reasons(later) == [DeadLetterReason.ATTEMPTS_EXHAUSTED.value]
    assert await board(applier) == [("alice", 30)]


async def test_a_removal_erases_attempts_so_the_user_starts_afresh_in_order(
    applier: BatchApplier,
) -> None:
    await entrants.join(applier.pool, "cup", "alice", T0)
    await applier.apply(records(score("e1", "alice", 10), score("e2", "alice", 20)))
    plan = await applier.apply(
        records(
            score("e3", "alice", 70),  # exhausted: before the removal
            removal("ctl-1", "alice"),
            score("e4", "alice", 5),
            score("e5", "alice", 6),
            score("e6", "alice", 80),  # exhausted again
        )
    )
    assert reasons(plan) == [DeadLetterReason.ATTEMPTS_EXHAUSTED.value] * 2
    assert await stored_attempts(applier) == {("cup", "2026-11-25", "alice"): 2}
    assert await board(applier) == [("alice", 6)]
