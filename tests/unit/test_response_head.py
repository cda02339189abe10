"""CheckedHeadCycle writes the same response head as uvicorn's cycle, checks included."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from shared.http import response_head
from shared.http.response_head import CheckedHeadCycle

DEFAULTS = [(b"server", b"uvicorn"), (b"date", b"Tue, 08 Dec 2026 03:20:00 GMT")]
SECURITY = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"default-src 'self'")]

HEADS: list[tuple[str, int, list[Any], bool]] = [
    # method, status, headers, keep-alive
    ("POST", 202, [(b"content-type", b"application/json"), (b"content-length", b"95")], True),
    ("POST", 202, [(b"Content-Length", b"2"), *SECURITY, (b"x-request-id", b"r-1")], True),
    ("GET", 200, [(b"content-type", b"text/plain")], True),  # neither length nor chunked
    ("HEAD", 200, [(b"content-type", b"text/plain")], True),
    ("GET", 204, [], True),
    ("GET", 304, [(b"etag", b'"v1"')], True),
    ("GET", 200, [(b"transfer-encoding", b"Chunked")], True),
    ("GET", 200, [(b"content-length", b"0"), (b"connection", b"keep-alive, Close")], True),
    ("GET", 200, [(b"content-length", b"0")], False),  # the connection closes after it
    ("GET", 200, [(b"content-length", b"3"), (b"content-length", b"4")], True),
    ("GET", 200, [[b"x-list", b"pair"], (b"content-length", b"0")], True),  # lists are ASGI too
    ("GET", 500, [(b"X-Mixed-Case", b"Value With Spaces"), (b"content-length", b"0")], True),
]
INVALID: list[list[Any]] = [
    [(b"bad name", b"v")],
    [(b"x-split", b"v\r\nset-cookie: a=b")],
    [(b"content-length", b"0"), (b"x-nul", b"a\x00b")],
]


class Recording:
    """A transport that keeps what was written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False


def _cycle(kind: type[RequestResponseCycle], method: str, keep_alive: bool) -> Any:
    transport = Recording()
    scope: Any = {"type": "http", "method": method, "path": "/", "headers": []}
    return kind(
        scope=scope,
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=list(DEFAULTS),
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )


def _state(cycle: Any) -> tuple[Any, ...]:
    return (
        cycle.transport.written,
        cycle.response_started,
        cycle.keep_alive,
        cycle.chunked_encoding,
        cycle.expected_content_length,
        cycle.waiting_for_100_continue,
    )


@pytest.mark.parametrize(("method", "status", "headers", "keep_alive"), HEADS)
async def test_the_head_and_the_cycle_state_are_uvicorns(
    method: str, status: int, headers: list[Any], keep_alive: bool
) -> None:
    for attempt in range(2):  # the second time from the memo
        ours, theirs = (
            _cycle(kind, method, keep_alive) for kind in (CheckedHeadCycle, RequestResponseCycle)
        )
        message: Any = {"type": "http.response.start", "status": status, "headers": headers}
        await ours.send(message)
        await theirs.send(message)
        assert _state(ours) == _state(theirs), attempt


@pytest.mark.parametrize("headers", INVALID)
async def test_an_invalid_header_is_refused_every_time(headers: list[Any]) -> None:
    for _ in range(2):
        for kind in (CheckedHeadCycle, RequestResponseCycle):
            cycle = _cycle(kind, "GET", True)
            message: Any = {"type": "http.response.start", "status": 200, "headers": headers}
            with pytest.raises(RuntimeError, match="Invalid HTTP header"):
                await cycle.send(message)
            assert cycle.transport.written == []
    assert not [pair for pair in response_head._lines if pair in headers]


async def test_only_plain_lines_are_remembered_and_the_memo_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(response_head, "_lines", {})
    monkeypatch.setattr(response_head, "MAX_LINES", 4)
    headers = [(b"content-length", b"0"), (b"connection", b"close"), *SECURITY]
    cycle = _cycle(CheckedHeadCycle, "GET", True)
    await cycle.send({"type": "http.response.start", "status": 200, "headers": headers})
    assert set(response_head._lines) == {*DEFAULTS, *SECURITY}  # no steering header
    extra = [(b"content-length", b"0"), (b"x-request-id", b"r-2")]
    cycle = _cycle(CheckedHeadCycle, "GET", True)
    await cycle.send({"type": "http.response.start", "status": 200, "headers": extra})
    assert len(response_head._lines) == 4  # full: checked every time, not kept
    assert b"x-request-id: r-2\r\n" in cycle.transport.written[0]


async def test_the_body_and_a_paused_transport_take_uvicorns_path() -> None:
    cycle = _cycle(CheckedHeadCycle, "GET", True)
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    await cycle.send({"type": "http.response.body", "body": b"ok"})
    assert cycle.transport.written[-1] == b"ok"
    assert cycle.response_complete
    with pytest.raises(RuntimeError, match="Unexpected ASGI message"):
        await cycle.send({"type": "http.response.start", "status": 200, "headers": []})


async def test_the_service_protocol_uses_the_checked_head() -> None:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from shared.http.header_timeout import HeaderTimeoutProtocol

    cycles: list[type] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        cycles.append(type(send.__self__))
        await send(
            {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"{}"})

    class Transport(Recording):
        def get_extra_info(self, name: str) -> Any:
            return ("127.0.0.1", 1) if name in ("peername", "sockname") else None

        def writelines(self, parts: Any) -> None:
            self.written.append(b"".join(parts))

        def set_write_buffer_limits(self, **_: Any) -> None:
            pass

        def close(self) -> None:
            pass

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

    config = Config(app, lifespan="off", access_log=False)
    protocol = HeaderTimeoutProtocol(config, ServerState(), {})
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
    for _ in range(5):
        await asyncio.sleep(0)
    assert cycles == [CheckedHeadCycle]
    assert b"".join(transport.written).startswith(b"HTTP/1.1 202 Accepted\r\n")
    protocol.connection_lost(None)
