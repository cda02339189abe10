"""The fan-out's direct path and the shared snapshot, without a server.

A client that can take an update at once (sender idle, under its rate limit, socket
writable) has the encoded frame written by the room: the same bytes for every top-only
client. Otherwise the update waits in the client's pending slot and its sender sends it
(through ASGI when the socket is not writable). The top a snapshot shows is read once per
window, top size and room version, and a client leaving mid-read does not cancel the read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from starlette.datastructures import QueryParams

from services.notifier import metrics, protocol, wire
from services.notifier.connection import ClientConnection, SharedTop, Subscription
from services.notifier.hub import Room
from services.notifier.repository import Standings
from services.notifier.settings import NotifierSettings
from shared.errors import ValidationFailedError
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import (
    Competition,
    Operator,
    ResetSchedule,
    SortOrder,
    Visibility,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
COMPETITION = Competition(
    id="arena",
    name="arena",
    sort_order=SortOrder.DESC,
    operator=Operator.BEST,
    reset=ResetSchedule.NONE,
    timezone="UTC",
    starts_at=None,
    ends_at=None,
    max_value=None,
    visibility=Visibility.PUBLIC,
    created_at=NOW,
    updated_at=NOW,
)
TOP = protocol.top_json([LeaderboardEntry(rank=1, user_id="ann", score=5.0)])
NEW_TOP = protocol.top_json([LeaderboardEntry(rank=1, user_id="bob", score=9.0)])
LATEST_TOP = protocol.top_json([LeaderboardEntry(rank=1, user_id="cat", score=12.0)])


class FakeWriter:
    """What the server's frame writer does: records frames, may refuse (socket not writable)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.writable = True

    def can_write(self) -> bool:
        return self.writable

    def write(self, frame: bytes) -> None:
        self.frames.append(frame)


class FakeWebSocket:
    """A socket whose client never speaks; ASGI sends are recorded."""

    def __init__(self, writer: FakeWriter | None) -> None:
        extensions = {} if writer is None else {wire.EXTENSION: {"writer": writer}}
        self.scope: dict[str, Any] = {"extensions": extensions}
        self.sent: list[str] = []
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def receive(self) -> dict[str, Any]:
        await self._never
        return {"type": "websocket.disconnect"}

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


class FakeRoom:
    """A room at ``version`` whose snapshot top is ``top``."""

    def __init__(self, version: int, top: str) -> None:
        self.version = version
        self.top = top

    async def top_snapshot(self, window: str, top_count: int) -> SharedTop:
        return SharedTop(version=self.version, top=self.top)


@pytest.fixture
async def served() -> AsyncIterator[tuple[ClientConnection, FakeWriter, FakeWebSocket]]:
    """A top-only client, past its snapshot, rate limit 20 Hz (50 ms between frames)."""
    writer = FakeWriter()
    websocket = FakeWebSocket(writer)
    client = _client(websocket, notify_max_hz=20.0)
    client.room = FakeRoom(version=3, top=TOP)
    task = asyncio.create_task(client.serve())
    await _until(lambda: len(writer.frames) == 1)
    yield client, writer, websocket
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _client(websocket: FakeWebSocket, **settings: Any) -> ClientConnection:
    subscription = Subscription(COMPETITION, "alltime", "alltime", None, 1)
    return ClientConnection(
        websocket,  # type: ignore[arg-type]
        subscription,
        NotifierSettings(env="dev", **settings),
        repository=None,  # type: ignore[arg-type]  # a top-only client never asks it
    )


async def _until(condition: Any, timeout_s: float = 2.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


async def test_the_snapshot_then_an_idle_clients_update_are_written_directly(
    served: tuple[ClientConnection, FakeWriter, FakeWebSocket],
) -> None:
    client, writer, websocket = served
    assert writer.frames[0] == wire.text_frame(
        protocol.top_snapshot_frame("arena", "alltime", 3, TOP)
    )
    await asyncio.sleep(0.06)  # past the rate limit
    assert client.deliver(4, NEW_TOP, None, NOW) is True
    assert writer.frames[1] == wire.text_frame(protocol.top_update_frame(4, NEW_TOP))
    assert orjson.loads(writer.frames[1][2:])["version"] == 4
    assert websocket.sent == []  # nothing went through ASGI
    # every top-only client of an update gets the very same bytes (encoded once)
    assert wire.text_frame(protocol.top_update_frame(4, NEW_TOP)) is writer.frames[1]


async def test_within_the_rate_limit_the_latest_state_waits_for_the_sender(
    served: tuple[ClientConnection, FakeWriter, FakeWebSocket],
) -> None:
    client, writer, _ = served
    await asyncio.sleep(0.06)
    assert client.deliver(4, NEW_TOP, None, NOW) is True
    # 50 ms have not passed: both are left to the sender, the newer replaces the older
    assert client.deliver(5, TOP, None, NOW) is False
    assert client.deliver(6, LATEST_TOP, None, NOW) is False
    await _until(lambda: len(writer.frames) == 3)
    assert writer.frames[2] == wire.text_frame(protocol.top_update_frame(6, LATEST_TOP))
    await asyncio.sleep(0.1)
    assert len(writer.frames) == 3  # version 5 was dropped, not sent late


async def test_a_socket_that_is_not_writable_gets_its_update_through_asgi(
    served: tuple[ClientConnection, FakeWriter, FakeWebSocket],
) -> None:
    client, writer, websocket = served
    await asyncio.sleep(0.06)
    writer.writable = False
    assert client.deliver(4, NEW_TOP, None, NOW) is False
    await _until(lambda: len(websocket.sent) == 1)
    assert websocket.sent == [protocol.top_update_frame(4, NEW_TOP)]
    assert len(writer.frames) == 1


async def test_without_a_frame_writer_every_frame_goes_through_asgi() -> None:
    websocket = FakeWebSocket(None)
    client = _client(websocket, notify_max_hz=20.0)
    client.room = FakeRoom(version=3, top=TOP)
    task = asyncio.create_task(client.serve())
    try:
        await _until(lambda: len(websocket.sent) == 1)
        await asyncio.sleep(0.06)
        assert client.deliver(4, NEW_TOP, None, NOW) is False
        await _until(lambda: len(websocket.sent) == 2)
        assert websocket.sent[1] == protocol.top_update_frame(4, NEW_TOP)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class CountingRepository:
    """Standings reads, counted; each waits for ``release`` so reads can overlap."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()

    async def standings(
        self,
        competition: Competition,
        window: str,
        top_count: int,
        user_ids: list[str],
        *,
        known_version: int,
    ) -> Standings:
        self.reads += 1
        await self.release.wait()
        entries = [LeaderboardEntry(rank=1, user_id=f"read-{self.reads}", score=1.0)]
        return Standings(version=known_version + 10, top=entries[:top_count], users={})


async def test_snapshot_tops_are_read_once_per_room_version_and_survive_a_leaver() -> None:
    repository = CountingRepository()
    room = Room(COMPETITION, repository)  # type: ignore[arg-type]
    try:
        leaver = asyncio.create_task(room.top_snapshot("alltime", 10))
        stayers = [asyncio.create_task(room.top_snapshot("alltime", 10)) for _ in range(50)]
        await asyncio.sleep(0.01)
        leaver.cancel()  # the first asker disconnects mid-read
        await asyncio.sleep(0.01)
        repository.release.set()
        tops = await asyncio.gather(*stayers)
        assert repository.reads == 1
        assert {top.top for top in tops} == {TOP.replace("ann", "read-1").replace("5.0", "1.0")}
        assert tops[0].version == 10
        assert (await room.top_snapshot("alltime", 10)) is tops[0]  # cached at this version
        assert repository.reads == 1
        await room.top_snapshot("alltime", 3)  # another top size is another read
        assert repository.reads == 2
        room.version = 7  # a change arrived (push() also clears the cache)
        assert (await room.top_snapshot("alltime", 10)).version == 17
        assert repository.reads == 3
    finally:
        await room.stop()


def test_batch_histogram_exposes_cumulative_buckets() -> None:
    registry = CollectorRegistry()
    histogram = metrics.BatchHistogram("x_age_seconds", "test", (0.01, 0.1, 1), registry)
    histogram.observe(0.01, 64)  # on a bound: counted in that bucket (le)
    histogram.observe(0.5, 3)
    histogram.observe(7.0)
    text = generate_latest(registry).decode()
    assert 'x_age_seconds_bucket{le="0.01"} 64.0' in text
    assert 'x_age_seconds_bucket{le="0.1"} 64.0' in text
    assert 'x_age_seconds_bucket{le="1.0"} 67.0' in text
    assert 'x_age_seconds_bucket{le="+Inf"} 68.0' in text
    assert "x_age_seconds_count 68.0" in text
    assert "x_age_seconds_sum 9.14" in text


def test_per_connection_log_lines_are_debug() -> None:
    logger = logging.getLogger("test.notifier.connections")
    connection_logs = wire.ConnectionLogsAtDebug(logger)

    def record(message: str) -> logging.LogRecord:
        return logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, (), None)

    logger.setLevel(logging.INFO)
    assert not connection_logs.filter(record('%s - "WebSocket %s" [accepted]'))
    assert not connection_logs.filter(record("connection open"))
    assert connection_logs.filter(record('%s - "WebSocket %s" 403'))  # a refusal stays INFO
    logger.setLevel(logging.DEBUG)
    demoted = record("connection closed")
    assert connection_logs.filter(demoted)
    assert (demoted.levelno, demoted.levelname) == (logging.DEBUG, "DEBUG")


@pytest.mark.parametrize(
    "query_string",
    [b"", b"top=5&user=u%2D1", b"top=3&top=7", b"window=alltime&user=a+b&extra=1", b"user="],
)
def test_the_cached_query_parse_reads_what_starlette_reads(query_string: bytes) -> None:
    def outcome(parse: Any) -> object:
        try:
            return parse()
        except ValidationFailedError as error:
            return error.details

    expected = outcome(lambda: protocol.parse_params(dict(QueryParams(query_string)), 10))
    assert outcome(lambda: protocol.parse_query_string(query_string, 10)) == expected
