"""Reading everything on a topic so far, without trusting the broker's end offsets.

tansu answers ``end_offsets()`` wrongly, so the reader first writes a marker record to each
partition and then reads every partition from the beginning up to its marker: whatever
precedes the markers is everything that was acknowledged before the call.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from podium.settings import PlatformSettings
from shared.kafka import create_consumer, create_producer

MARKER_HEADER = "test_marker"


async def read_topic(
    settings: PlatformSettings, topic: str, *, timeout_s: float = 20.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` acknowledged before this call, in partition order."""
    marker = uuid.uuid4().hex.encode()
    producer = create_producer(settings)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        for partition in partitions:
            await producer.send_and_wait(
                topic, b"", partition=partition, headers=[(MARKER_HEADER, marker)]
            )
    finally:
        await producer.stop()

    consumer = create_consumer(
        settings, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        assigned = [TopicPartition(topic, partition) for partition in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        waiting = set(assigned)
        deadline = time.monotonic() + timeout_s
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"markers not read from {sorted(map(str, waiting))}")
            batches = await consumer.getmany(*waiting, timeout_ms=500)
            for tp, batch in batches.items():
                for record in batch:
                    if (MARKER_HEADER, marker) in list(record.headers):
                        waiting.discard(tp)
                        break
                    if not any(key == MARKER_HEADER for key, _ in record.headers):
                        records.append(record)
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
    return records
