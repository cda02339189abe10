"""The shared change feed (used by the notifier) against the real broker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from podium.settings import PlatformSettings
from shared.change_feed import (
    ChangeFeed,
    ChangeSignal,
    ChangeSignalFeed,
    encode_change_message,
    open_change_feed,
)
from shared.kafka import create_producer
from shared.schemas.change_message import ChangeMessage


def change(competition_id: str, version: int) -> ChangeMessage:
    return ChangeMessage(
        competition_id=competition_id, version=version, emitted_at=datetime.now(UTC), windows=[]
    )


class Collector:
    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []

    async def __call__(self, change_message: ChangeMessage) -> None:
        self.received.append((change_message.competition_id, change_message.version))

    async def wait_for(self, count: int, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"got {len(self.received)} of {count}"
            await asyncio.sleep(0.02)


async def test_every_feed_gets_every_message_from_now_on_and_nothing_older(
    settings: PlatformSettings,
) -> None:
    producer = create_producer(settings)
    await producer.start()
    try:
        history = []  # 300 messages before any feed starts
        for version in range(1, 301):
            key, value = encode_change_message(change(f"c{version % 7}", version))
            history.append(await producer.send(settings.topic_changes, value, key=key))
        await asyncio.gather(*history)
        await asyncio.sleep(0.3)
        first, second = Collector(), Collector()
        async with (
            open_change_feed(settings, first, replay_margin_s=0.2),
            open_change_feed(settings, second, replay_margin_s=0.2),
        ):
            sent = []
            for version in range(1000, 1040):
                message = change(f"c{version % 7}", version)
                key, value = encode_change_message(message)
                await producer.send_and_wait(settings.topic_changes, value, key=key)
                sent.append((message.competition_id, version))
            await first.wait_for(len(sent))
            await second.wait_for(len(sent))
            await asyncio.sleep(0.3)  # nothing else trickles in
        for collector in (first, second):
            assert sorted(collector.received) == sorted(sent)
            for competition_id in {cid for cid, _ in sent}:
                versions = [v for cid, v in collector.received if cid == competition_id]
                assert versions == sorted(versions)  # per-competition order is kept
    finally:
        await producer.stop()


async def test_invalid_messages_and_failing_handlers_do_not_stop_the_feed(
    settings: PlatformSettings,
) -> None:
    received: list[int] = []

    async def handler(change_message: ChangeMessage) -> None:
        received.append(change_message.version)
        if change_message.version == 1:
            raise RuntimeError("a consumer bug")

    producer = create_producer(settings)
    await producer.start()
    feed = ChangeFeed(settings, handler)
    await feed.start()
    try:
        assert feed.running
        await producer.send_and_wait(settings.topic_changes, b"{not json", key=b"c1")
        for version in (1, 2):
            key, value = encode_change_message(change("c1", version))
            await producer.send_and_wait(settings.topic_changes, value, key=key)
        deadline = time.monotonic() + 10
        while received != [1, 2]:
            assert time.monotonic() < deadline, received
            await asyncio.sleep(0.02)
        assert feed.running
    finally:
        await feed.stop()
        await feed.stop()  # idempotent
        await producer.stop()
    assert not feed.running


async def test_a_signal_feed_delivers_which_competition_changed_and_when(
    settings: PlatformSettings,
) -> None:
    """The query service's feed: competition id and emitted_at only; invalid messages (bad
    JSON, a missing or non-string competition id, a bad emitted_at) are skipped."""
    signals: list[ChangeSignal] = []

    async def handler(signal: ChangeSignal) -> None:
        signals.append(signal)

    producer = create_producer(settings)
    await producer.start()
    feed = ChangeSignalFeed(settings, handler)
    await feed.start()
    try:
        for junk in (
            b"{not json",
            b'{"emitted_at": "2026-12-01T00:00:00+00:00"}',
            b'{"competition_id": 7, "emitted_at": "2026-12-01T00:00:00+00:00"}',
            b'{"competition_id": "c9", "emitted_at": "yesterday"}',
        ):
            await producer.send_and_wait(settings.topic_changes, junk, key=b"c9")
        message = change("c1", 1)
        key, value = encode_change_message(message)
        await producer.send_and_wait(settings.topic_changes, value, key=key)
        deadline = time.monotonic() + 10
        while not signals:
            assert time.monotonic() < deadline, "no signal"
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # nothing else trickles in
        assert signals == [ChangeSignal("c1", message.emitted_at.timestamp())]
    finally:
        await feed.stop()
        await producer.stop()


async def test_a_fetch_that_skips_offsets_is_fetched_again_so_no_change_is_missed(
    settings: PlatformSettings,
) -> None:
    """The dev broker can hand out a later batch first (shared/offset_gaps.py); the test makes
    the same skip by seeking the feed's client past offsets it never read."""
    delivered: list[int] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def handler(change_message: ChangeMessage) -> None:
        delivered.append(change_message.version)
        if change_message.version == 3:  # hold the feed while later messages arrive
            holding.set()
            await release.wait()

    producer = create_producer(settings)
    await producer.start()
    try:
        async with open_change_feed(settings, handler, replay_margin_s=0.2) as feed:
            positions = []
            for version in range(1, 9):
                key, value = encode_change_message(change("c1", version))
                positions.append(
                    await producer.send_and_wait(settings.topic_changes, value, key=key)
                )
                if version == 3:
                    await asyncio.wait_for(holding.wait(), 10)
            partition = positions[0].topic_partition
            assert feed._consumer is not None
            feed._consumer.seek(partition, positions[5].offset)  # versions 4 and 5 skipped
            release.set()
            deadline = time.monotonic() + 10
            while len(delivered) < 8:
                assert time.monotonic() < deadline, f"delivered {delivered}"
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)
        assert delivered == list(range(1, 9))
    finally:
        await producer.stop()
