"""A dropped batch is fetched again, also from a partition the group never committed.

The ranker's consumer drops what it collected when the group moves on mid-batch and seeks
back to the committed offsets. aiokafka's ``seek_to_committed`` does not move a partition
with nothing committed, so without more its fetch position stayed past the dropped records
and the next batch's commit skipped them: accepted events lost. This drives the real
consumer (faust app, consumer thread, broker) in-process with a handler that only records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from aiokafka.structs import ConsumerRecord

from podium.settings import PlatformSettings
from services.ranker.agent import consumer_app
from services.ranker.consumer import BatchConsumer
from shared.kafka import create_producer

RECORDS = 5
REFETCH_TIMEOUT_S = 10.0


async def test_a_rewind_fetches_an_uncommitted_partition_again(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    producer = create_producer(settings)
    await producer.start()
    try:
        for index in range(RECORDS):
            await producer.send_and_wait(settings.topic_score_events, b"%d" % index, key=b"c")
    finally:
        await producer.stop()

    app = consumer_app(settings, tmp_path)
    batches: list[list[int]] = []
    fetched = asyncio.Event()

    async def record(records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        batches.append([r.offset for r in records])
        fetched.set()

    await app.start()
    try:
        consumer = cast(BatchConsumer, app.consumer)
        consumer.attach(record)
        await asyncio.wait_for(fetched.wait(), 60)
        seen = sorted({offset for batch in batches for offset in batch})
        assert seen == list(range(RECORDS))
        consumer.attach(None)
        fetched.clear()
        batches.clear()
        await consumer._rewind(records_dropped=RECORDS)  # nothing was committed
        consumer.attach(record)
        # without the seek to the beginning, nothing is fetched again: this wait times out
        await asyncio.wait_for(fetched.wait(), REFETCH_TIMEOUT_S)
        assert batches[0][0] == 0
    finally:
        await app.stop()
