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
from aiokafka.errors import KafkaError

from services.ingest.metrics import PRODUCE_LATENCY
from shared.errors import DependencyUnavailableError
from shared.kafka_headers import KafkaHeaders
from shared.kafka_partitioning import KeyPartitioner

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
                send = self._producer.send
                # sorted like aiokafka's partitioner sees them; memoized murmur2 per key
                partitions = sorted(await self._producer.partitions_for(self._topic))
                partition_of = self._partitioner.partition
                for record in records:
                    key = record.key.encode()
                    deliveries.append(
                        await send(
                            self._topic,
                            value=record.value,
                            key=key,
                            partition=partition_of(key, partitions),
                            headers=headers,
                        )
                    )
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


def _discard_outcome(delivery: asyncio.Future[object]) -> None:
    if not delivery.cancelled():
        delivery.exception()
