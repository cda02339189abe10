"""Pipelined batches on the real consumer (faust app, consumer thread, broker): the next batch
is handed over while the previous batch's rest (its messages' acks, its offset commit) is
still pending, but no batch after it; rests run in batch order, a batch's offsets reach the
broker only when its rest runs, and a revocation (``wait_empty``) waits for every rest."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from podium.settings import PlatformSettings
from services.ranker.agent import BatchHandler
from services.ranker.consumer import BatchConsumer, BatchRest, BatchTransport
from services.ranker.lag import LagTracker
from tests.support.ranker_consumer import produce_records, running_consumer

RECORDS = 5
TIMEOUT_S = 10.0


class GatedHandler:
    """Hands each batch's rest to the real :meth:`BatchHandler.rest` (so its commit is the
    real one), with the acks replaced by a gate the test opens."""

    def __init__(self, consumer: BatchConsumer) -> None:
        self.handler = BatchHandler(consumer, cast(Any, None), LagTracker(lambda tp: None))
        self.batches: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.finished: list[int] = []
        self.handed = asyncio.Event()

    async def __call__(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> BatchRest:
        index = len(self.batches)
        self.batches.append([record.offset for record in records])
        gate = asyncio.Event()
        self.gates.append(gate)
        self.handed.set()

        async def delivered() -> None:
            await gate.wait()
            self.finished.append(index)

        return self.handler.rest(records, delivered)

    async def wait_for_records(self, count: int, timeout_s: float = TIMEOUT_S) -> list[int]:
        """Every offset handed over once at least ``count`` were (TimeoutError if not)."""
        async with asyncio.timeout(timeout_s):
            while sum(map(len, self.batches)) < count:
                self.handed.clear()
                await self.handed.wait()
        return [offset for batch in self.batches for offset in batch]


async def _committed(consumer: BatchConsumer, tp: TopicPartition) -> int | None:
    """The group's committed offset of ``tp``, as the broker has it."""
    client = consumer._thread._ensure_consumer()
    offset: int | None = await consumer._thread.call_thread(client.committed, tp)
    return offset


async def test_the_next_batch_is_applied_while_the_previous_one_waits_for_its_acks(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    tp = await produce_records(settings, 0, RECORDS)
    async with running_consumer(settings, tmp_path) as consumer:
        # one rest may overlap the next batch (4 by default: the mechanism is the same)
        transport = cast(BatchTransport, consumer.transport)
        transport.fetching = dataclasses.replace(transport.fetching, rests_overlapping=1)
        handler = GatedHandler(consumer)
        consumer.attach(handler)
        assert await handler.wait_for_records(RECORDS) == list(range(RECORDS))
        assert len(handler.batches) == 1
        await produce_records(settings, RECORDS, RECORDS)
        # handed over although the first batch's acks are still pending
        assert await handler.wait_for_records(2 * RECORDS) == list(range(2 * RECORDS))
        assert len(handler.batches) == 2
        await produce_records(settings, 2 * RECORDS, RECORDS)
        # ... but not a third: one rest overlaps the next batch (as set above), no more
        with pytest.raises(TimeoutError):
            await handler.wait_for_records(3 * RECORDS, timeout_s=1.0)
        assert not await _committed(consumer, tp)  # no offset before its batch's acks

        revoked = asyncio.create_task(consumer.wait_empty())
        handler.gates[1].set()  # the second batch's acks come first ...
        await asyncio.sleep(0.5)
        assert handler.finished == []  # ... but its rest waits for the first batch's
        assert len(handler.batches) == 2
        assert not revoked.done()
        assert not await _committed(consumer, tp)

        handler.gates[0].set()  # both rests run, in order; the third batch is handed over
        assert await handler.wait_for_records(3 * RECORDS) == list(range(3 * RECORDS))
        for gate in handler.gates:
            gate.set()
        async with asyncio.timeout(TIMEOUT_S):
            await revoked  # a revocation waits for every rest
        assert handler.finished == list(range(len(handler.batches)))
        assert await _committed(consumer, tp) == 3 * RECORDS
