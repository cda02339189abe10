"""Applying one batch end to end: PostgreSQL, Redis, change messages and dead letters.

Order per batch: in one PostgreSQL transaction planned for key lookups (no sequential scans),
lock the batch's competitions, read the state the events depend on, plan, take the next
standings version of every competition the batch writes to Redis, write events, standings and
those versions, then write the same absolute standings to Redis while the locks are still
held (so a ranker that lost the partition in a rebalance cannot overwrite newer Redis state
with older), and commit. Redis
refuses a competition's write unless its built marker holds the version before the batch (issue
#17): a competition whose Redis keys are missing, or lost some writes (an older snapshot), or
hold writes PostgreSQL rolled back, is rebuilt from PostgreSQL after the commit instead (the
rebuild then includes this batch). Change messages and dead letters are published last; the
caller commits offsets only after :meth:`BatchApplier.apply` returns, and retries the whole
batch when it raises.

The consumer pipelines batches (:meth:`BatchApplier.apply_then_deliver`): once a batch is
committed to PostgreSQL and Redis and its messages are handed to the producer, the next batch
may start while the broker acknowledges them; offsets are committed only after every message
of the batch is acknowledged, and batches finish in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import asyncpg
from aiokafka import AIOKafkaProducer
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_never,
    wait_exponential,
    wait_random_exponential,
)

from services.ranker import metrics
from services.ranker.heal import heal_competition
from services.ranker.index import (
    IndexedCompetition,
    change_message,
    planned_writes,
    read_back,
    write_batch,
)
from services.ranker.planner import BatchPlan, IncomingEvent, plan_batch, users_of
from services.ranker.records import decode as decode  # re-exported: the ranker's decoder
from services.ranker.repository import (
    begin_batch,
    load_state,
    new_standings_versions,
    write_plan,
)
from services.ranker.settings import RankerSettings
from shared import tracing
from shared.kafka_batches import OpenBatches
from shared.kafka_headers import REQUEST_ID, header_value
from shared.leaderboard_store import LeaderboardStore
from shared.redis_client import RedisClient

logger = logging.getLogger(__name__)

REASON_HEADER = "reason"

T = TypeVar("T")


class BatchApplier:
    """Applies batches of ``score-events`` records with effectively-once results."""

    def __init__(
        self,
        settings: RankerSettings,
        pool: asyncpg.Pool,
        redis: RedisClient,
        producer: AIOKafkaProducer,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.store = LeaderboardStore(redis, settings.redis_key_prefix)
        self.producer = producer
        self._changes = OpenBatches(producer, settings.topic_changes)

    async def apply_with_retries(self, events: Sequence[IncomingEvent]) -> BatchPlan:
        """Apply ``events``, retrying with exponential back-off until it succeeds.

        Never raises (except cancellation on shutdown): a batch is either applied or still
        pending, so offsets never move past an unapplied event.
        """
        started = time.monotonic()
        plan: BatchPlan = await self._retrying(len(events))(self.apply, events)
        self._observe_applied(events, plan, started)
        return plan

    async def apply_then_deliver(
        self, events: Sequence[IncomingEvent]
    ) -> tuple[BatchPlan, Callable[[], Awaitable[None]]]:
        """Apply ``events`` (retrying as :meth:`apply_with_retries`) up to handing its change
        messages and dead letters to the producer; returns the plan and what waits for the
        broker's acknowledgement of them.

        The consumer starts the next batch meanwhile: the producer keeps a partition's records
        in the order they were handed over, so a competition's change messages still arrive in
        batch order. The returned wait never raises (except cancellation): if the broker
        refuses a message, the batch is applied again (all its events are duplicates by then:
        nothing is written twice, its dead letters are sent again) until it is acknowledged,
        as :meth:`apply` does when its own publish fails. Offsets go after the wait only.
        """
        started = time.monotonic()
        applied: tuple[BatchPlan, list[asyncio.Future[Any]]] = await self._retrying(len(events))(
            self._apply_and_send, events
        )
        plan, sends = applied
        self._observe_applied(events, plan, started)

        async def delivered() -> None:
            try:
                await self._delivered(sends)
            except Exception:
                metrics.BATCH_RETRIES.inc()
                logger.exception("a batch's messages were not acknowledged; applying it again")
                await self.apply_with_retries(events)

        return plan, delivered

    @staticmethod
    def _observe_applied(
        events: Sequence[IncomingEvent], plan: BatchPlan, started_monotonic: float
    ) -> None:
        metrics.APPLY_LATENCY.observe(time.monotonic() - started_monotonic)
        metrics.BATCH_SIZE.observe(len(events))
        log_outcomes(events, plan)

    def _retrying(self, batch_size: int) -> AsyncRetrying:
        """Retry on any error, forever; cancellation is no error (shutdown still stops it).

        The n-th wait is between half and all of ``min(max back-off, 0.1 s * 2**(n-1))``:
        the random half keeps rankers that failed together (one outage) from retrying in
        step, the fixed half keeps them from hammering a dependency that is down.
        """
        half_cap_s = self.settings.ranker_retry_max_backoff_s / 2

        def log_retry(state: RetryCallState) -> None:
            metrics.BATCH_RETRIES.inc()
            error = state.outcome.exception() if state.outcome else None
            logger.error(
                "batch of %d failed; retry %d in %.1f s",
                batch_size,
                state.attempt_number,
                state.upcoming_sleep,
                exc_info=error,
            )

        return AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            stop=stop_never,
            wait=wait_exponential(multiplier=0.05, max=half_cap_s)
            + wait_random_exponential(multiplier=0.05, max=half_cap_s),
            before_sleep=log_retry,
        )

    async def apply(self, events: Sequence[IncomingEvent]) -> BatchPlan:
        """Apply ``events`` once, up to the broker's acknowledgement of its messages (raises
        when a dependency fails; safe to call again)."""
        plan, sends = await self._apply_and_send(events)
        await self._delivered(sends)
        return plan

    async def _apply_and_send(
        self, events: Sequence[IncomingEvent]
    ) -> tuple[BatchPlan, list[asyncio.Future[Any]]]:
        """Apply ``events`` once and hand its messages to the producer; returns the plan and
        the messages' delivery futures (raises when a dependency fails; safe to call again)."""
        batch = list(events)
        decoded = [event.message for event in batch if event.message is not None]
        competition_ids = sorted({message.competition_id for message in decoded})
        stage = StageClock()
        async with self.pool.acquire() as connection, connection.transaction():
            await begin_batch(connection, competition_ids)
            stage.done("lock")
            state = await load_state(
                connection,
                competition_ids,
                users_of(batch),
                [m.event_id for m in decoded if m.kind == "score"],
                [m.event_id for m in decoded if m.kind == "control"],
                (m for m in decoded if m.kind == "score"),
            )
            stage.done("read")
            plan = plan_batch(
                batch,
                state,
                self.settings.ranker_period_grace_s,
                timedelta(days=self.settings.dedup_horizon_days),
            )
            stage.done("plan")
            planned = await planned_writes(
                self.store, [state.competitions[cid] for cid in sorted(plan.touched)], plan
            )
            new_versions = new_standings_versions(state, [item.competition.id for item in planned])
            stage.done("versions")
            # PostgreSQL and Redis written concurrently (Redis: one pipelined round trip);
            # both hold the batch before the commit, as when written one after the other: a
            # failure of either rolls back PostgreSQL and the retried batch rewrites the same
            # absolute standings to Redis
            written = await asyncio.gather(
                timed("write_postgresql", write_plan(connection, plan, new_versions)),
                timed(
                    "write_redis",
                    write_batch(
                        self.store,
                        planned,
                        new_versions,
                        self.settings.ranker_top_n,
                        int(time.time() * 1000),
                    ),
                ),
                return_exceptions=True,  # no rollback while a statement still runs
            )
            for outcome in written:
                if isinstance(outcome, BaseException):
                    raise outcome
            indexed = cast(list[IndexedCompetition], written[1])
            stage.done("write")
        stage.done("commit")
        for position, item in enumerate(indexed):
            if item.stale is not None:
                await self._heal(item)
                indexed[position] = await read_back(self.store, item, self.settings.ranker_top_n)
        stage.done("heal")
        sends = await self._send(plan, indexed)
        stage.done("publish")
        metrics.EVENTS_APPLIED.labels("score").inc(len(plan.new_scores))
        metrics.EVENTS_APPLIED.labels("control").inc(len(plan.new_controls))
        metrics.DUPLICATES_DROPPED.inc(plan.duplicates)
        for dead_letter in plan.dead_letters:
            metrics.DEAD_LETTERS.labels(dead_letter.reason.value).inc()
        return plan, sends

    @staticmethod
    async def _delivered(sends: Sequence[asyncio.Future[Any]]) -> None:
        """Wait until the broker acknowledged every one of ``sends`` (raises the first
        refusal)."""
        # shielded: a Kafka batch's future is shared by every message in it (later batches'
        # too), so a cancelled wait must not cancel it
        await timed("delivered", asyncio.gather(*(asyncio.shield(send) for send in sends)))

    async def _heal(self, item: IndexedCompetition) -> None:
        """Rebuild a competition whose write Redis refused (after the commit, under its lock).

        Always, even when the marker now equals PostgreSQL's version: a marker left *ahead*
        by an attempt PostgreSQL rolled back holds exactly the version this batch has just
        committed, over standings that are not this batch's (and Redis holds none of this
        batch's writes either way). A competition's first batch is never refused for a missing
        marker (the write script builds it), so every refusal is a stale board.
        """
        assert item.stale is not None
        metrics.STALE_BOARDS.labels(item.stale.value, "batch").inc()
        async with self.pool.acquire() as connection:
            await heal_competition(
                connection,
                self.store,
                item.competition.id,
                item.competition.sort_order,
                force=True,
            )
        metrics.REBUILDS.inc()

    async def _send(
        self, plan: BatchPlan, indexed: Sequence[IndexedCompetition]
    ) -> list[asyncio.Future[Any]]:
        """Hand the batch's change messages, then its dead letters, to the producer, in that
        order; returns their delivery futures (acknowledged when they complete)."""
        sends: list[asyncio.Future[Any]] = []
        emitted_at = datetime.now(UTC)
        # with tracing on, each change message carries the batch span's context (the current
        # one: the traced handler applies the batch inside it), which the notifier continues
        change_headers = tracing.context_headers() if tracing.ENABLED else []
        if indexed:
            # one message per touched competition: appended to the open batch of its
            # partition (shared.kafka_batches), one future per Kafka batch, not per message
            partitions = self._changes.known_partitions() or await self._changes.wait_partitions()
            messages = (
                (item.competition.id, change_message(item, plan, emitted_at)) for item in indexed
            )
            sends.extend(self._changes.append_keyed(messages, change_headers, partitions))
        for dead_letter in plan.dead_letters:
            event = dead_letter.event
            # the original headers first (request id, producer, trace context), then why and
            # where from (a reader takes the last value of a name: these win)
            headers = [
                *event.headers,
                (REASON_HEADER, dead_letter.reason.value.encode()),
                ("source_partition", str(event.partition).encode()),
                ("source_offset", str(event.offset).encode()),
            ]
            if event.decode_error:
                headers.append(("error", event.decode_error.encode()))
            sends.append(
                await self.producer.send(
                    self.settings.topic_dead_letters,
                    key=event.key,
                    value=event.value,
                    headers=headers,
                )
            )
        return sends


async def timed(stage: str, work: Awaitable[T]) -> T:
    """Await ``work``, observing its own time as ``stage`` (for work that runs beside other
    work: PostgreSQL's and Redis's writes overlap, so their times are not additive)."""
    started = time.perf_counter()
    try:
        return await work
    finally:
        metrics.BATCH_STAGE_OF[stage].observe(time.perf_counter() - started)


class StageClock:
    """Times the stages of one batch attempt into ``podium_ranker_batch_stage_seconds``:
    each :meth:`done` observes the time since the previous one (or since the clock began)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        """``stage`` ended now."""
        now = time.perf_counter()
        metrics.BATCH_STAGE_OF[stage].observe(now - self._last)
        self._last = now


def event_fields(event: IncomingEvent) -> dict[str, object]:
    """What a log line about one event names: its request id and trace id (from the
    record's headers, as ingest wrote them; None when absent), event id and position."""
    message = event.message
    return {
        "request_id": header_value(event.headers, REQUEST_ID),
        "trace_id": tracing.trace_id_of(event.headers),
        "event_id": message.event_id if message is not None else None,
        "source_partition": event.partition,
        "source_offset": event.offset,
    }


def outcomes(events: Sequence[IncomingEvent], plan: BatchPlan) -> list[str]:
    """Each event's outcome in ``plan``, in batch order: ``applied``, ``duplicate`` or
    ``dead_letter`` (the plan lists what it wrote; an event it neither wrote nor
    dead-lettered was a duplicate)."""
    written = {id(message) for message in plan.new_scores}
    written.update(id(message) for message in plan.new_controls)
    dead = {id(dead_letter.event) for dead_letter in plan.dead_letters}
    return [
        "dead_letter"
        if id(event) in dead
        else "applied"
        if id(event.message) in written
        else "duplicate"
        for event in events
    ]


def log_outcomes(events: Sequence[IncomingEvent], plan: BatchPlan) -> None:
    """A line per dead letter (WARNING) and, at DEBUG, per applied or duplicate event, each
    naming the event's request id and trace id: one score's path can be followed in the logs.

    Per-event lines for the common outcomes only at DEBUG: at INFO a line per event would
    cost more than applying it; the level is checked once per batch.
    """
    for dead_letter in plan.dead_letters:
        fields = event_fields(dead_letter.event)
        logger.warning(
            "event %s dead-lettered: %s",
            fields["event_id"],
            dead_letter.reason.value,
            extra={**fields, "outcome": "dead_letter", "reason": dead_letter.reason.value},
        )
    if not logger.isEnabledFor(logging.DEBUG):
        return
    for event, outcome in zip(events, outcomes(events, plan), strict=True):
        if outcome == "dead_letter":
            continue
        fields = event_fields(event)
        logger.debug(
            "event %s %s", fields["event_id"], outcome, extra={**fields, "outcome": outcome}
        )
