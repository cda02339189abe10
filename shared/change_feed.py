"""Tail ``leaderboard-changes`` from "now" in every process that asks (no consumer group).

Every notifier instance must see every change message (it fans out to its own sockets), and the
query service drops its cached pages on each one, so a shared consumer group is wrong: the feed
assigns itself every partition of ``settings.topic_changes`` and never commits.

Where "now" starts (the broker-independent part of the contract):

1. ``started_ms`` is taken when :meth:`ChangeFeed.start` runs; ``threshold_ms`` is that minus
   ``replay_margin_s`` (producers' clocks may lag ours a little).
2. Each partition is positioned with ``offsets_for_times(threshold_ms)`` (ListOffsets by time):

   - an offset with a real timestamp → start there (the first message at/after the threshold);
   - ``None`` (Kafka: no such message yet) → the end offset read *before* ``started_ms``, so a
     message produced after start-up is at or past it;
   - a negative timestamp (tansu answers ``offset 0, timestamp -1`` instead of ``None``) → the
     beginning of the partition.

   ``end_offsets()``/``seek_to_end()`` alone are not trusted: tansu was measured answering ``1``
   for a partition holding 500 messages. A wrong-high answer cannot lose messages either:
   ``auto_offset_reset="earliest"`` sends an out-of-range position back to the beginning.
3. Every record whose timestamp is older than ``threshold_ms`` is skipped before parsing, which
   turns "read from the beginning" into a correct (if slower) "from now".

So a message produced after :meth:`start` returned is always delivered (on Kafka and tansu);
messages produced up to ``replay_margin_s`` before may be delivered too, which consumers must
tolerate (change messages are idempotent state, carrying a per-competition ``version``).
Partitions added to the topic after start-up are not picked up until a restart.

From the first record of a partition on, its records must follow each other: a fetch that
skipped offsets (the dev broker can hand out a later batch first, see
:mod:`shared.offset_gaps`) is fetched again from the first missing one, so no change message
is silently missed (a missed last change would leave sockets and caches stale for good).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Self

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from pydantic import ValidationError

from shared import tracing
from shared.kafka import create_consumer, ensure_topics
from shared.offset_gaps import GapWatch
from shared.schemas.change_message import ChangeMessage
from shared.settings import CommonSettings
from shared.tasks import cancel_and_wait

logger = logging.getLogger(__name__)

ChangeHandler = Callable[[ChangeMessage], Awaitable[None]]

CHANGE_FEED_MESSAGES = Counter(
    "podium_change_feed_messages_total",
    "Records read from leaderboard-changes, by outcome (delivered, skipped_old, invalid;"
    " held_back: the fetch skipped offsets before them and the partition is fetched again).",
    ["outcome"],
)

DEFAULT_REPLAY_MARGIN_S = 30.0
_METADATA_ATTEMPTS = 50


@dataclass(frozen=True, slots=True)
class ChangeSignal:
    """Which competition changed and when the ranker emitted the change: all that a consumer
    that only drops state needs (the query service's page cache)."""

    competition_id: str
    emitted_at_s: float
    """``emitted_at`` as seconds since the epoch."""
    deleted: bool = False
    """The competition was deleted (``ChangeMessage.deleted``): drop everything of it."""


SignalHandler = Callable[[ChangeSignal], Awaitable[None]]


class _Tail:
    """Tails ``leaderboard-changes`` from "now" and hands each record's value to
    :meth:`_handle` (the subclasses decode it: in full, or only what a signal needs).

    Parameters:
        settings: Kafka connection and ``topic_changes``.
        replay_margin_s: how far before start-up the feed still delivers (clock-skew slack).
    """

    def __init__(
        self, settings: CommonSettings, *, replay_margin_s: float = DEFAULT_REPLAY_MARGIN_S
    ) -> None:
        self._settings = settings
        self._replay_margin_ms = int(replay_margin_s * 1000)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.threshold_ms = 0
        self._gap_watch = GapWatch(settings.kafka_gap_wait_s)
        self._next_offsets: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        """Assign every partition, position them at "now" and start delivering."""
        if self._task is not None:
            return
        consumer = create_consumer(
            self._settings,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.change_feed_fetch_wait_ms,
        )
        try:
            await consumer.start()
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await self._position(consumer, partitions)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer), name="change-feed")

    async def stop(self) -> None:
        """Stop delivering and close the consumer (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Whether the tail task is alive (for readiness checks)."""
        return self._task is not None and not self._task.done()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        topic = self._settings.topic_changes
        for attempt in range(_METADATA_ATTEMPTS):
            await consumer.topics()  # refreshes the cluster metadata
            numbers = consumer.partitions_for_topic(topic)
            if numbers:
                return [TopicPartition(topic, number) for number in sorted(numbers)]
            if attempt == 0:
                await ensure_topics(self._settings)
            await asyncio.sleep(0.1)
        raise RuntimeError(f"topic {topic!r} has no partitions")

    async def _position(self, consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> None:
        end_offsets: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        started_ms = int(time.time() * 1000)
        self.threshold_ms = started_ms - self._replay_margin_ms
        found = await consumer.offsets_for_times(
            {partition: max(self.threshold_ms, 0) for partition in partitions}
        )
        for partition in partitions:
            answer = found.get(partition)
            if answer is None:
                consumer.seek(partition, end_offsets[partition])
            elif answer.timestamp < 0:
                consumer.seek(partition, 0)
            else:
                consumer.seek(partition, answer.offset)

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000)
            except KafkaError:
                logger.exception("change feed fetch failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for partition, fetched in batches.items():
                for record in self._consecutive(consumer, partition, fetched):
                    if tracing.ENABLED:
                        await self._deliver_traced(record)
                    else:
                        await self._deliver(record.timestamp, record.value)

    def _consecutive(
        self,
        consumer: AIOKafkaConsumer,
        partition: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The records to deliver: none when they skip offsets after the last one delivered
        (the partition is then fetched again from the first missing one), and none delivered
        twice. Nothing is expected of a partition before its first record (where it starts
        is the broker's answer, see the module docstring)."""
        expected = self._next_offsets.get(partition)
        if expected is not None:
            records = [record for record in records if record.offset >= expected]
            if (
                records
                and records[0].offset > expected
                and self._gap_watch.fetch_again(partition, expected)
            ):
                CHANGE_FEED_MESSAGES.labels("held_back").inc(len(records))
                consumer.seek(partition, expected)
                return []
        if records:
            self._gap_watch.closed(partition)
            self._next_offsets[partition] = records[-1].offset + 1
        return records

    async def _deliver_traced(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Deliver inside a ``receive`` span continuing the context the ranker wrote on the
        change message (its batch span), so a handler's work (the notifier's fan-out) joins
        that trace."""
        if record.timestamp < self.threshold_ms:
            await self._deliver(record.timestamp, record.value)
            return
        with tracing.tracer().start_as_current_span(
            f"{record.topic} receive",
            context=tracing.extract(record.headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "receive",
                "messaging.destination.name": record.topic,
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.offset": record.offset,
            },
        ):
            await self._deliver(record.timestamp, record.value)

    async def _deliver(self, timestamp_ms: int, value: bytes | None) -> None:
        if timestamp_ms < self.threshold_ms:
            CHANGE_FEED_MESSAGES.labels("skipped_old").inc()
            return
        await self._handle(value or b"")

    async def _handle(self, value: bytes) -> None:
        raise NotImplementedError


class ChangeFeed(_Tail):
    """Delivers every :class:`ChangeMessage` produced after :meth:`start` to ``handler``.

    ``handler`` is awaited once per message, in partition order; an exception it raises is
    logged and the feed goes on (one bad consumer must not stop the tail). Invalid messages
    are counted and skipped. Use ``async with ChangeFeed(settings, handler):`` or
    ``start()``/``stop()``.
    """

    def __init__(
        self,
        settings: CommonSettings,
        handler: ChangeHandler,
        *,
        replay_margin_s: float = DEFAULT_REPLAY_MARGIN_S,
    ) -> None:
        super().__init__(settings, replay_margin_s=replay_margin_s)
        self._handler = handler

    async def _handle(self, value: bytes) -> None:
        try:
            change_message = ChangeMessage.model_validate_json(value)
        except ValidationError as error:
            CHANGE_FEED_MESSAGES.labels("invalid").inc()
            logger.warning("skipping an invalid change message: %s", error.errors()[:3])
            return
        CHANGE_FEED_MESSAGES.labels("delivered").inc()
        try:
            await self._handler(change_message)
        except Exception:  # the handler's bug must not stop the tail for everyone
            logger.exception("change handler failed on %s", change_message.competition_id)


class ChangeSignalFeed(_Tail):
    """Like :class:`ChangeFeed`, but delivers only a :class:`ChangeSignal` per message.

    A full validation of a change message (windows, tops, changed users) costs ~40 µs; this
    reads the JSON and the two fields (~10 µs), so a consumer that only needs to know which
    competition changed is not charged for the rest at tens of thousands of changes per
    second. A message without a string ``competition_id`` and ISO ``emitted_at`` is counted
    invalid and skipped, as in :class:`ChangeFeed`.
    """

    def __init__(
        self,
        settings: CommonSettings,
        handler: SignalHandler,
        *,
        replay_margin_s: float = DEFAULT_REPLAY_MARGIN_S,
    ) -> None:
        super().__init__(settings, replay_margin_s=replay_margin_s)
        self._handler = handler

    async def _handle(self, value: bytes) -> None:
        try:
            fields = orjson.loads(value)
            competition_id, emitted_at = fields["competition_id"], fields["emitted_at"]
            if not isinstance(competition_id, str):
                raise TypeError("competition_id is not a string")
            signal = ChangeSignal(
                competition_id,
                datetime.fromisoformat(emitted_at).timestamp(),
                fields.get("deleted") is True,
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            CHANGE_FEED_MESSAGES.labels("invalid").inc()
            logger.warning("skipping an invalid change message: %r", error)
            return
        CHANGE_FEED_MESSAGES.labels("delivered").inc()
        try:
            await self._handler(signal)
        except Exception:  # the handler's bug must not stop the tail for everyone
            logger.exception("change handler failed on %s", competition_id)


@contextlib.asynccontextmanager
async def open_change_feed(
    settings: CommonSettings,
    handler: ChangeHandler,
    *,
    replay_margin_s: float = DEFAULT_REPLAY_MARGIN_S,
) -> AsyncIterator[ChangeFeed]:
    """Run a :class:`ChangeFeed` for the duration of the block (positioned when entered)."""
    feed = ChangeFeed(settings, handler, replay_margin_s=replay_margin_s)
    await feed.start()
    try:
        yield feed
    finally:
        await feed.stop()


def encode_change_message(change_message: ChangeMessage) -> tuple[bytes, bytes]:
    """The Kafka key and value of a change message (key = competition id)."""
    return change_message.competition_id.encode(), change_message.model_dump_json().encode()
