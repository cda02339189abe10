"""Publishing records onto ``score-events`` and waiting for the broker's acknowledgement.

Records go straight into the producer's *open batch* of their partition
(:class:`shared.kafka_batches.OpenBatches`),
the batch aiokafka's own ``send`` appends to: concurrent requests share one batch per
partition, and each request waits on the batches its records landed in, not on one future
per record. Before, a single POST paid for ``send``'s per-record future and bookkeeping plus
an ``asyncio.wait`` (≈ 27 µs of CPU per publish against ≈ 10 µs now), and a batch request
built its own batch per partition: aiokafka sends one batch per partition per produce request
and lets only one wait per partition (``send_batch``), so 16 concurrent 500-event requests
queued behind each other and some failed with ``KafkaTimeoutError`` long before the timeout.

Guarantees kept: a request is answered 202 only once every batch holding one of its records
is acknowledged (``acks=all``: the producer's setting); one competition's records keep their
order, because one key always maps to one partition and a partition's batches are appended,
drained and retried in order by the producer (the same path ``send`` uses, so the idempotent
producer's sequence numbers still cover every record). The whole publish is bounded by
``kafka_request_timeout_s``: past it the request is a 503 and nothing is claimed accepted (a
record that still lands later is harmless, the ranker deduplicates by event id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, ProducerClosed
from opentelemetry.trace import SpanKind

from services.ingest.metrics import PRODUCE_LATENCY
from shared import tracing
from shared.errors import DependencyUnavailableError
from shared.kafka_batches import Delivery, OpenBatches
from shared.kafka_headers import KafkaHeaders
from shared.logging import request_id_var

logger = logging.getLogger(__name__)


class OutgoingRecord(NamedTuple):
    """One record: its key (the competition id) and encoded value (a tuple: a batch builds
    hundreds per request, and a frozen dataclass costs 50% more to create)."""

    key: str
    value: bytes


class EventPublisher:
    """Sends records with shared headers and waits until the broker acknowledged them all."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s
        self._batches = OpenBatches(producer, topic)
        self._latency = {
            outcome: PRODUCE_LATENCY.labels(outcome) for outcome in ("ok", "timeout", "error")
        }

    async def publish(self, records: Sequence[OutgoingRecord], headers: KafkaHeaders) -> None:
        """Publish ``records``; raise 503 unless every one is acknowledged in time."""
        if not records:
            return
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        outcome = "error"
        try:
            partitions = self._batches.known_partitions()
            if partitions is None:  # no metadata yet (first use, or the broker was away)
                async with asyncio.timeout_at(deadline):
                    partitions = await self._batches.wait_partitions()
            deliveries = self._batches.append_keyed(records, headers, partitions)
            error = await _all_done(loop, deliveries, deadline)
            if error is not None:
                raise error
            outcome = "ok"
        except TimeoutError as error:
            outcome = "timeout"
            logger.warning("broker did not acknowledge %d record(s) in time", len(records))
            raise DependencyUnavailableError(
                f"the event broker did not acknowledge within {self._timeout_s:g} s",
                retry_after_s=self._timeout_s,
            ) from error
        except KafkaError as error:
            logger.warning("publishing failed: %s: %s", type(error).__name__, error)
            raise DependencyUnavailableError(
                "the event broker refused the write", retry_after_s=1.0
            ) from error
        finally:
            self._latency[outcome].observe(time.perf_counter() - started)


class TracedEventPublisher(EventPublisher):
    """An :class:`EventPublisher` that traces: a producer span around each publish, whose
    context goes into every record's headers (``traceparent``), so the ranker can link the
    batch that applies a record to the request that accepted it.

    Chosen instead of the plain publisher when the app starts with tracing on: an untraced
    ingest never runs any of this (the single POST is the hot path).
    """

    async def publish(self, records: Sequence[OutgoingRecord], headers: KafkaHeaders) -> None:
        """Publish ``records`` inside a ``score-events publish`` span (see the class)."""
        if not records:
            return
        with tracing.tracer().start_as_current_span(
            f"{self._topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "send",
                "messaging.destination.name": self._topic,
                "messaging.batch.message_count": len(records),
                "podium.request_id": request_id_var.get() or "",
            },
        ):
            await super().publish(records, [*headers, *tracing.context_headers()])


def publisher_class() -> type[EventPublisher]:
    """The publisher this process uses: traced when tracing is on (decided at start-up)."""
    return TracedEventPublisher if tracing.ENABLED else EventPublisher


async def _all_done(
    loop: asyncio.AbstractEventLoop, deliveries: set[Delivery], deadline: float
) -> KafkaError | None:
    """Wait until every delivery succeeded (None) or one failed (its error); raise
    ``TimeoutError`` at ``deadline`` (loop time).

    The deliveries are shared with other requests, so they are never awaited directly (a
    timeout or disconnect cancelling the wait must not cancel a batch): one private waiter is
    resolved by callbacks and by one timer, cheaper than ``asyncio.wait`` in a timeout scope.
    """
    waiter: asyncio.Future[KafkaError | None] = loop.create_future()
    remaining = len(deliveries)

    def settled(delivery: Delivery) -> None:
        nonlocal remaining
        # always look at the outcome: a failed batch nobody waits for any more is then not
        # reported as "exception never retrieved"
        error = _failure(delivery)
        if waiter.done():
            return
        if error is not None:
            waiter.set_result(error)
            return
        remaining -= 1
        if remaining == 0:
            waiter.set_result(None)

    for delivery in deliveries:
        delivery.add_done_callback(settled)
    timer = loop.call_at(deadline, _expire, waiter)
    try:
        return await waiter
    finally:
        timer.cancel()


def _expire(waiter: asyncio.Future[KafkaError | None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _failure(delivery: Delivery) -> KafkaError | None:
    if delivery.cancelled():
        return ProducerClosed()
    error = delivery.exception()
    if error is None:
        return None
    if isinstance(error, KafkaError):
        return error
    return KafkaError(f"{type(error).__name__}: {error}")
