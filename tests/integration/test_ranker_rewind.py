"""The real consumer (faust app, consumer thread, broker) fetches records again rather than
commit past ones it never handed over, driven in-process with a handler that only records.

- A dropped batch is fetched again, also from a partition the group never committed:
  aiokafka's ``seek_to_committed`` does not move a partition with nothing committed, so its
  fetch position stayed past the dropped records and the next commit skipped them.
- A fetch that skips offsets (the dev broker hands out a later batch before an earlier one is
  readable) is fetched again from the first missing offset. The test makes the skip by
  seeking the client past offsets it never read (taking a gap as real after ``gap_wait_s``
  is covered by tests/unit/test_ranker_records.py: a real one cannot be made on tansu).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from podium.settings import PlatformSettings
from services.ranker.consumer import BatchConsumer
from tests.support.ranker_consumer import produce_records, running_consumer

RECORDS = 5
FETCH_TIMEOUT_S = 10.0


class Recorder:
    """A fetch handler that keeps the offsets it was handed."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.fetched = asyncio.Event()

    async def __call__(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        self.offsets += [record.offset for record in records]
        self.fetched.set()

    async def wait_for(self, count: int) -> list[int]:
        """The offsets handed over once at least ``count`` arrived (a timeout fails)."""
        async with asyncio.timeout(FETCH_TIMEOUT_S):
            while len(self.offsets) < count:
                self.fetched.clear()
                await self.fetched.wait()
        return self.offsets


async def test_a_rewind_fetches_an_uncommitted_partition_again(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    await produce_records(settings, 0, RECORDS)
    async with running_consumer(settings, tmp_path) as consumer:
        first = Recorder()
        consumer.attach(first)
        assert sorted(await first.wait_for(RECORDS)) == list(range(RECORDS))
        consumer.attach(None)
        await consumer._rewind(records_dropped=RECORDS)  # nothing was committed
        again = Recorder()
        consumer.attach(again)
        # without the seek to the beginning nothing is fetched again: this wait times out
        assert (await again.wait_for(1))[0] == 0


async def _skip_ahead(consumer: BatchConsumer, tp: TopicPartition, to_offset: int) -> None:
    """Move the client's fetch position past offsets it never read (what the dev broker's
    skipped batch does), leaving the ranker's read offset where it was."""
    consumer._thread._ensure_consumer().seek(tp, to_offset)


async def test_a_fetch_that_skips_offsets_is_fetched_again_from_the_first_missing_one(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    tp = await produce_records(settings, 0, RECORDS)
    async with running_consumer(settings, tmp_path) as consumer:
        first = Recorder()
        consumer.attach(first)
        await first.wait_for(RECORDS)
        consumer.attach(None)
        await consumer.seek(tp, 1)  # as a rebalance does: position and read offset at 1
        await _skip_ahead(consumer, tp, 3)  # the next fetch returns 3 and 4 only
        again = Recorder()
        consumer.attach(again)
        assert await again.wait_for(RECORDS - 1) == [1, 2, 3, 4]  # not [3, 4]
