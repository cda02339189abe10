"""Records appended straight to a producer's open batch of their partition.

aiokafka's ``send`` costs, per record, a metadata wait, the serializers, a pure-Python
murmur2 for the partition, the accumulator's bookkeeping and a future of its own (≈ 20-27 µs).
Ingest (every accepted event) and the ranker (every change message: one per touched
competition per batch) append to the producer's open batch of the partition instead and wait
on the batch's one future (≈ 3-10 µs a record). The placement is aiokafka's own
(:class:`~shared.kafka_partitioning.KeyPartitioner`), and the batches are the ones ``send``
uses, appended, drained and retried in order by the producer: one key's records keep their
order, and the idempotent producer's sequence numbers still cover every record.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError, ProducerClosed
from aiokafka.producer.message_accumulator import MessageAccumulator, MessageBatch
from aiokafka.structs import TopicPartition

from shared.kafka_headers import KafkaHeaders
from shared.kafka_partitioning import KeyPartitioner

Delivery = asyncio.Future[object]
"""The outcome of one producer batch (shared by every record in it)."""


class OpenBatches:
    """Appends records to the producer's open batch of their partition.

    This reads internals of aiokafka's ``MessageAccumulator`` (``_batches``, the pending
    batches per partition; ``_append_batch``, which queues a new one and wakes the sender;
    ``_closed`` and ``_exception``, checked as its ``add_message`` does);
    :meth:`check` verifies them when the app starts, so an aiokafka upgrade that
    changes them fails at start-up, not on a request (aiokafka is pinned in constraints.txt).
    A batch leaves ``_batches`` when the sender drains it, so a record is never added to a
    batch already on its way; a retried batch comes back closed, and the next record opens a
    new batch behind it.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._accumulator: MessageAccumulator = producer._message_accumulator
        self._topic = topic
        self._partitions: dict[int, TopicPartition] = {}
        self._partitioner = KeyPartitioner()
        self.check()

    def known_partitions(self) -> list[int] | None:
        """The topic's partitions, sorted, from the producer's metadata; None while it has
        none (first use, or the broker was away: :meth:`wait_partitions`)."""
        found = self._producer.client.cluster.partitions_for_topic(self._topic)
        return sorted(found) if found else None

    async def wait_partitions(self) -> list[int]:
        """The topic's partitions, sorted, fetching the metadata when it is missing."""
        return sorted(await self._producer.partitions_for(self._topic))

    def append_keyed(
        self, records: Iterable[tuple[str, bytes]], headers: KafkaHeaders, partitions: list[int]
    ) -> set[Delivery]:
        """Append every (text key, value) record to the open batch of the partition the
        producer's own partitioner gives its key, in order; the distinct batches they landed
        in."""
        partition_of = self._partitioner.partition
        append = self.append
        deliveries: set[Delivery] = set()
        for text_key, value in records:
            key = text_key.encode()
            deliveries.add(append(partition_of(key, partitions), key, value, headers))
        return deliveries

    def check(self) -> None:
        """Raise ``RuntimeError`` unless the accumulator has the internals this class uses."""
        accumulator = self._accumulator
        batches = getattr(accumulator, "_batches", None)
        if (
            not isinstance(batches, dict)
            or not callable(getattr(accumulator, "_append_batch", None))
            or not hasattr(accumulator, "_closed")
            or not hasattr(accumulator, "_exception")
        ):
            raise RuntimeError(
                "aiokafka's MessageAccumulator changed (_batches, _append_batch, _closed, "
                "_exception): shared/kafka_batches.py needs updating for this version"
            )

    def append(self, partition: int, key: bytes, value: bytes, headers: KafkaHeaders) -> Delivery:
        """Add one record to ``partition``'s open batch (a new one when it is full or gone);
        return that batch's delivery future."""
        accumulator = self._accumulator
        if accumulator._closed:
            raise ProducerClosed()
        if accumulator._exception is not None:
            raise copy.copy(accumulator._exception)  # as aiokafka does: no shared traceback
        tp = self._partitions.get(partition)
        if tp is None:
            tp = self._partitions[partition] = TopicPartition(self._topic, partition)
        pending = accumulator._batches.get(tp)
        batch: MessageBatch | None = pending[-1] if pending else None
        if batch is None or not _add(batch, key, value, headers):
            # none open, or it is full (a full builder closes itself): queue one behind it
            batch = accumulator._append_batch(accumulator.create_builder(), tp)
            if not _add(batch, key, value, headers):
                raise MessageSizeTooLargeError(f"a record of {len(value)} bytes")
        delivery: Delivery = batch.future
        return delivery


def _add(batch: MessageBatch, key: bytes, value: bytes, headers: KafkaHeaders) -> bool:
    """Append to the batch's builder; False when it is closed (drained or full)."""
    added = batch._builder.append(timestamp=None, key=key, value=value, headers=headers)
    return added is not None
