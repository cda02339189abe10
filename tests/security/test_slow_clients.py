"""Slow clients are cut off in bounded time and never hold others up.

- Slow body: headers arrive, then the body trickles in. uvicorn has no body-read timeout;
  the edge middleware gives the whole body ``PODIUM_HTTP_BODY_TIMEOUT_S`` and answers 408
  with ``Connection: close``.
- Slow headers (slowloris): uvicorn times out idle keep-alive connections but not a request
  head that trickles in; ``shared.http.header_timeout`` closes such a connection after
  ``timeout_keep_alive`` (5 s). Measured on the real ``podium serve`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from podium.settings import PlatformSettings
from services.ingest.app import create_app
from tests.security.conftest import Stack
from tests.support.servers import running_app

BODY_TIMEOUT_S = 1.5
HEAD_TIMEOUT_S = 5.0  # uvicorn's timeout_keep_alive in shared.http.server
# generous upper bounds: the promise is "bounded", the margin absorbs a loaded machine
CUT_OFF_WITHIN_S = 10.0


@pytest.fixture
async def ingest_url(settings: PlatformSettings) -> AsyncIterator[str]:
    quick = settings.model_copy(update={"http_body_timeout_s": BODY_TIMEOUT_S})
    async with running_app(create_app(quick), quick) as base_url:
        yield base_url


async def _open(base_url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    assert parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def _trickle(writer: asyncio.StreamWriter, data: bytes, every_s: float) -> None:
    """Write ``data`` one byte at a time; stop quietly when the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(every_s)


async def _read_until_closed(reader: asyncio.StreamReader, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``limit_s``)."""
    received = b""
    async with asyncio.timeout(limit_s):
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def _others_are_served(base_url: str, rounds: int = 10) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=CUT_OFF_WITHIN_S) as client:
        for _ in range(rounds):
            live = await client.get("/health/live")
            assert live.status_code == 200
            refused = await client.post("/api/v1/scores", json={"value": 1})
            assert refused.status_code == 401  # a full request, answered at once
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_trickling_body_gets_408_and_the_connection_closed(
    ingest_url: str, token_for: object, framing: str
) -> None:
    assert callable(token_for)
    token = token_for("slow-body", "scores:write")
    head = (
        "POST /api/v1/scores HTTP/1.1\r\nHost: podium\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\n"
    )
    body = b'{"event_id": "slow", "competition_id": "c", "user_id": "slow-body", "value": 1}'
    if framing == "chunked":
        head += "Transfer-Encoding: chunked\r\n\r\n"
        payload = b"".join(b"1\r\n" + bytes([byte]) + b"\r\n" for byte in body) + b"0\r\n\r\n"
    else:
        head += f"Content-Length: {len(body)}\r\n\r\n"
        payload = body
    readers = []
    for _ in range(5):
        reader, writer = await _open(ingest_url)
        writer.write(head.encode())
        await writer.drain()
        readers.append((reader, writer, asyncio.create_task(_trickle(writer, payload, 0.2))))
    started = time.monotonic()
    try:
        await _others_are_served(ingest_url)
        answers = await asyncio.gather(
            *(_read_until_closed(reader, CUT_OFF_WITHIN_S) for reader, _, _ in readers)
        )
    finally:
        for _, writer, trickle in readers:
            trickle.cancel()
            writer.close()
    elapsed = time.monotonic() - started
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"connection: close" in answer.lower()
        assert b'"code":"request_timeout"' in answer
    print(f"slow bodies ({framing}) cut off after {elapsed:.1f} s (deadline {BODY_TIMEOUT_S} s)")


async def test_a_body_in_time_is_not_affected(ingest_url: str, token_for: object) -> None:
    """A body that is slow but within the deadline is read and judged (here: 422)."""
    assert callable(token_for)
    token = token_for("slow-ok", "scores:write")
    reader, writer = await _open(ingest_url)
    body = b'{"user_id": "slow-ok", "value": 1}'
    writer.write(
        b"POST /api/v1/scores HTTP/1.1\r\nHost: podium\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + token.encode() + b"\r\n"
        b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    )
    await _trickle(writer, body, BODY_TIMEOUT_S / len(body) / 3)
    answer = await _read_until_closed(reader, CUT_OFF_WITHIN_S)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 422 "), answer[:200]
    assert b"event_id" in answer  # the body was read and validated


async def test_slow_headers_are_closed_without_blocking_others(stack: Stack) -> None:
    base_url = stack.urls["ingest"]
    head = b"POST /api/v1/scores HTTP/1.1\r\nHost: podium\r\nX-Slow: " + b"a" * 200
    connections = []
    for index in range(20):
        reader, writer = await _open(base_url)
        # half trickle a header forever, half open and send nothing at all
        trickle = asyncio.create_task(_trickle(writer, head if index % 2 else b"", 0.3))
        connections.append((reader, writer, trickle))
    started = time.monotonic()
    try:
        await _others_are_served(base_url)
        answers = await asyncio.gather(
            *(_read_until_closed(reader, CUT_OFF_WITHIN_S) for reader, _, _ in connections)
        )
    finally:
        for _, writer, trickle in connections:
            trickle.cancel()
            writer.close()
    elapsed = time.monotonic() - started
    assert answers == [b""] * len(connections)  # closed without an answer
    assert elapsed >= HEAD_TIMEOUT_S - 1.0  # not closed early: the deadline is the timeout
    print(f"slow-header connections closed after {elapsed:.1f} s (deadline {HEAD_TIMEOUT_S} s)")


async def test_a_busy_keep_alive_connection_keeps_its_head_deadline_per_request(
    stack: Stack,
) -> None:
    """The head deadline starts again after every response (the timer is kept lazily: one
    per connection, re-armed when a later request moved the deadline), so a connection
    that keeps asking for longer than the timeout stays open, and the head it then
    trickles is cut off one timeout after its last response, not earlier."""
    reader, writer = await _open(stack.urls["ingest"])
    request = b"GET /health/live HTTP/1.1\r\nHost: podium\r\n\r\n"
    try:
        started = time.monotonic()
        while time.monotonic() - started < HEAD_TIMEOUT_S * 1.5:
            writer.write(request)
            await writer.drain()
            async with asyncio.timeout(CUT_OFF_WITHIN_S):
                status = await reader.readline()
                assert status.startswith(b"HTTP/1.1 200 "), status
                length = 0
                while (line := await reader.readline()) != b"\r\n":
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
            last_response = time.monotonic()
            await asyncio.sleep(HEAD_TIMEOUT_S / 6)
        trickle = asyncio.create_task(_trickle(writer, b"GET /health/live HTTP/1.1\r\n", 0.3))
        try:
            assert await _read_until_closed(reader, CUT_OFF_WITHIN_S) == b""
        finally:
            trickle.cancel()
        closed_after_s = time.monotonic() - last_response
    finally:
        writer.close()
    assert HEAD_TIMEOUT_S - 1.0 <= closed_after_s <= HEAD_TIMEOUT_S + 3.0, closed_after_s
