"""CoalescedWrites: a response's head and body leave in one call; nothing held is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.http.coalesced_writes import CoalescedWrites


class RecordingTransport:
    """Records what reaches the socket, one entry per call (writelines counts as one)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.sent.append(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def test_head_and_body_leave_in_one_call() -> None:
    transport = RecordingTransport()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
    assert transport.sent == []
    writes.write(b"{}")
    assert transport.sent == [b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(transport.sent) == 1  # the cancelled flush sends nothing more


async def test_a_lone_write_goes_out_on_the_next_loop_turn() -> None:
    transport = RecordingTransport()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    writes.write(b"")  # an empty body adds nothing and flushes nothing
    assert transport.sent == []
    await asyncio.sleep(0)
    assert transport.sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    writes.write(bytearray(b"chunk-1"))
    writes.write(memoryview(b"chunk-2"))
    writes.write(b"chunk-3")
    await asyncio.sleep(0)
    assert transport.sent[1:] == [b"chunk-1chunk-2", b"chunk-3"]  # order kept


async def test_close_flushes_what_is_held_and_discard_drops_it() -> None:
    transport = RecordingTransport()
    writes = CoalescedWrites(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    writes.write(b"last answer")
    writes.close()
    assert transport.sent == [b"last answer"]
    assert transport.closed
    assert writes.is_closing()
    assert writes.get_extra_info("peername") == "info:peername"

    closed_under_it = RecordingTransport()
    late = CoalescedWrites(closed_under_it, asyncio.get_running_loop())  # type: ignore[arg-type]
    late.write(b"head of a response")
    closed_under_it.close()  # the protocol closed the real transport (shutdown)
    await asyncio.sleep(0)
    assert closed_under_it.sent == []

    gone = RecordingTransport()
    lost = CoalescedWrites(gone, asyncio.get_running_loop())  # type: ignore[arg-type]
    lost.write(b"never sent")
    lost.discard()
    await asyncio.sleep(0)
    assert gone.sent == []


class SocketLikeTransport(RecordingTransport):
    """What uvicorn's protocol asks of a TCP transport, over no socket."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def test_the_service_protocol_sends_a_small_response_in_one_call() -> None:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from shared.http.header_timeout import HeaderTimeoutProtocol

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"11")]}
        )
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    config = Config(app, lifespan="off", access_log=False)
    protocol = HeaderTimeoutProtocol(config, ServerState(), {})
    transport = SocketLikeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    for _ in range(2):  # two requests on one keep-alive connection
        protocol.data_received(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
    assert len(transport.sent) == 2
    for response in transport.sent:
        assert response.startswith(b"HTTP/1.1 202 Accepted\r\n")
        assert response.endswith(b'\r\n\r\n{"ok":true}')
    protocol.connection_lost(None)
