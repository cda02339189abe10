"""The ranker's real consumer (faust app, consumer thread, broker) driven in-process, and
records for it: for tests of what the consumer hands over and commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

from aiokafka import TopicPartition

from podium.settings import PlatformSettings
from services.ranker.agent import consumer_app
from services.ranker.consumer import BatchConsumer
from shared.kafka import create_producer


async def produce_records(settings: PlatformSettings, first: int, count: int) -> TopicPartition:
    """``count`` records (values ``first``, ``first + 1``, ...) under one key, so to one
    partition, sent together (one produce request: a consumer fetches them together) and
    acknowledged; returns that partition."""
    producer = create_producer(settings)
    await producer.start()
    try:
        sends = [
            await producer.send(settings.topic_score_events, b"%d" % index, key=b"c")
            for index in range(first, first + count)
        ]
        metadata = (await asyncio.gather(*sends))[-1]
    finally:
        await producer.stop()
    return TopicPartition(metadata.topic, metadata.partition)


@asynccontextmanager
async def running_consumer(
    settings: PlatformSettings, datadir: Path
) -> AsyncIterator[BatchConsumer]:
    """The ranker's consumer app, started (nothing attached yet), stopped on exit."""
    app = consumer_app(settings, datadir)
    await app.start()
    try:
        yield cast(BatchConsumer, app.consumer)
    finally:
        await app.stop()
