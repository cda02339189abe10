"""Publishing records onto ``score-events`` and waiting for the broker's acknowledgement.

Every record of a request is handed to the producer first and only then awaited, so the
producer batches them (``linger_ms``) instead of paying one broker round trip per event.
The whole publish is bounded by ``kafka_request_timeout_s``: past it the request is a 503
and nothing is claimed accepted (a record that still lands later is harmless, the ranker
deduplicates by event id).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder

from services.ingest.kafka_headers import KafkaHeaders
from services.ingest.metrics import PRODUCE_LATENCY
from services.ingest.partitioning import KeyPartitioner
from shared.errors import DependencyUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """One record: its key (the competition id) and encoded value."""

    key: str
    value: bytes


class EventPublisher:
    """Sends records with shared headers and waits until the broker acknowledged them all."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, *, timeout_s: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_s = timeout_s
        self._partitioner = KeyPartitioner()

    async def publish(self, records: Sequence[OutgoingRecord], headers: KafkaHeaders) -> None:
        """Publish ``records``; raise 503 unless every one is acknowledged in time."""
        if not records:
            return
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        deliveries: list[asyncio.Future[object]] = []
        outcome = "error"
        try:
            # one deadline for the whole publish: wait_for per record would wrap every send
            # in a task of its own (Python 3.11), a large share of a 500-event batch's CPU
            async with asyncio.timeout_at(loop.time() + self._timeout_s):
                await self._enqueue(records, headers, deliveries)
                # asyncio.wait never cancels the deliveries themselves on a timeout
                await asyncio.wait(deliveries)
            for delivery in deliveries:
                delivery.result()
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
            for delivery in deliveries:
                # late outcomes are nobody's business any more; retrieve them silently
                delivery.add_done_callback(_discard_outcome)
            PRODUCE_LATENCY.labels(outcome).observe(time.perf_counter() - started)

    async def _enqueue(
        self,
        records: Sequence[OutgoingRecord],
        headers: KafkaHeaders,
        deliveries: list[asyncio.Future[object]],
    ) -> None:
        """Hand ``records`` to the producer, appending one delivery future per batch/record.

        One record goes through ``send`` and shares the producer's open batch with other
        requests. Several are built into one batch per partition (``create_batch`` /
        ``send_batch``): no per-record future, partition check or accumulator call, and a
        request's records for one competition stay in order within their partition.
        """
        producer, topic = self._producer, self._topic
        # sorted like aiokafka's partitioner sees them; memoized murmur2 per key
        partitions = sorted(await producer.partitions_for(topic))
        partition_of = self._partitioner.partition
        if len(records) == 1:
            key = records[0].key.encode()
            partition = partition_of(key, partitions)
            deliveries.append(
                await producer.send(
                    topic, value=records[0].value, key=key, partition=partition, headers=headers
                )
            )
            return
        builders: dict[int, BatchBuilder] = {}
        for record in records:
            key = record.key.encode()
            partition = partition_of(key, partitions)
            builder = builders.get(partition)
            if builder is None:
                builder = builders[partition] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=record.value, headers=headers):
                continue
            # full (max_batch_size): submit it, the rest of the partition follows in order
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=record.value, headers=headers):
                continue
            raise MessageSizeTooLargeError(f"a record of {len(record.value)} bytes")
        for partition, builder in builders.items():
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))


def _discard_outcome(delivery: asyncio.Future[object]) -> None:
    if not delivery.cancelled():
        delivery.exception()
