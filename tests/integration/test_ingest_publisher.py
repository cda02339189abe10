"""The publisher shares the producer's open batches between concurrent requests.

Order per competition, placement and acknowledgement must be exactly what one request at a
time would get; a request that gives up (timeout) must not take a shared batch down with it.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from aiokafka.partitioner import DefaultPartitioner

from podium.settings import PlatformSettings
from services.ingest.publisher import EventPublisher, OutgoingRecord
from shared.errors import DependencyUnavailableError
from shared.kafka import create_producer
from shared.kafka_batches import OpenBatches
from shared.kafka_headers import REQUEST_ID, header_value, origin_headers
from tests.support.topic_reader import read_topic

KEYS = [f"cup-{index}" for index in range(7)]


async def test_concurrent_requests_keep_each_keys_order_and_placement(
    settings: PlatformSettings,
) -> None:
    producer = create_producer(settings)
    await producer.start()
    try:
        publisher = EventPublisher(producer, settings.topic_score_events, timeout_s=10.0)

        async def request(number: int) -> None:
            # a mix of single-record and multi-record requests, all keys interleaved
            size = 1 if number % 3 == 0 else 25
            records = [
                OutgoingRecord(KEYS[(number + i) % len(KEYS)], f"r{number}-{i:02d}".encode())
                for i in range(size)
            ]
            await publisher.publish(records, origin_headers(f"req-{number}", "game-server"))

        await asyncio.gather(*(request(number) for number in range(40)))
    finally:
        await producer.stop()

    records = await read_topic(settings, settings.topic_score_events)
    expected = sum(1 if number % 3 == 0 else 25 for number in range(40))
    assert len(records) == expected
    partitions = list(range(settings.kafka_partitions))
    default = DefaultPartitioner()
    seen: dict[tuple[str, str], list[int]] = {}
    for record in records:
        assert record.key is not None
        assert record.value is not None
        assert record.partition == default(record.key, partitions, partitions)
        request_id = header_value(record.headers, REQUEST_ID)
        assert request_id is not None
        number, index = record.value.decode().removeprefix("r").split("-")
        assert request_id == f"req-{number}"
        seen.setdefault((record.key.decode(), number), []).append(int(index))
    for indexes in seen.values():
        # within one request, a key's records are on the topic in the order they were given
        assert indexes == sorted(indexes)


async def test_a_request_that_times_out_does_not_cancel_a_shared_batch(
    settings: PlatformSettings,
) -> None:
    producer = create_producer(settings, linger_ms=200)  # the batch stays open a while
    await producer.start()
    try:
        topic = settings.topic_score_events
        patient = EventPublisher(producer, topic, timeout_s=10.0)
        hasty = EventPublisher(producer, topic, timeout_s=0.05)
        headers = origin_headers("req", "game-server")
        waiting = asyncio.create_task(patient.publish([OutgoingRecord("cup-0", b"a")], headers))
        await asyncio.sleep(0.01)
        with pytest.raises(DependencyUnavailableError):
            await hasty.publish([OutgoingRecord("cup-0", b"b")], headers)
        await waiting  # acknowledged: the batch both records share was not cancelled
    finally:
        await producer.stop()
    values = {record.value for record in await read_topic(settings, topic)}
    assert {b"a", b"b"} <= values  # the 503'd record still landed (the ranker dedups)


def test_an_accumulator_without_the_expected_internals_fails_at_start() -> None:
    producer = SimpleNamespace(_message_accumulator=SimpleNamespace(_batches={}))
    with pytest.raises(RuntimeError, match="aiokafka's MessageAccumulator changed"):
        OpenBatches(producer, "topic")
