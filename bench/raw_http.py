"""A minimal keep-alive HTTP/1.1 GET client for the freshness probes' polling.

A probe polls the query API every few milliseconds until its score shows; through httpx each
poll cost the bench process ~0.5 ms of CPU, so a few probes in flight took a fifth of a core
on a machine whose two cores also run every service under test (and a busy prober reports
late). This client does only what the polling needs, a GET on a pooled connection and a
``content-length`` body, for a fraction of that. Anything else (chunked bodies, a closed
connection) is an error or a reconnect, never a silent wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

_HEADER_END = b"\r\n\r\n"


class RawHttpError(RuntimeError):
    """The server answered something this client does not read (or not at all)."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(_HEADER_END)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise RawHttpError("chunked responses are not supported")
        if length is None:
            raise RawHttpError("response without content-length")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class RawHttpClient:
    """GETs against one ``http://host:port`` origin over a pool of keep-alive connections."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"need http://host:port, got {base_url!r}")
        self._host, self._port = parts.hostname, parts.port
        self._host_header = f"{parts.hostname}:{parts.port}".encode()
        self._idle: list[_Connection] = []

    async def get(self, path: str) -> tuple[int, bytes]:
        """``GET path``: the status and body.

        A pooled connection the server closed meanwhile (uvicorn drops idle keep-alives after
        5 s) fails on first use; then every pooled one is presumed as old, dropped, and the
        request retried once on a fresh connection. A failure there raises
        :class:`RawHttpError` (``asyncio.IncompleteReadError`` is an ``EOFError``, which
        click would report as an abort).
        """
        request = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + self._host_header + b"\r\n\r\n"
        reused = bool(self._idle)
        connection = self._idle.pop() if reused else await self._open()
        try:
            answer = await self._exchange(connection, request)
        except RawHttpError:
            if not reused:
                raise
            await self.aclose()
            connection = await self._open()
            answer = await self._exchange(connection, request)
        self._idle.append(connection)
        return answer

    @staticmethod
    async def _exchange(connection: _Connection, request: bytes) -> tuple[int, bytes]:
        try:
            return await connection.get(request)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as error:
            connection.close()
            raise RawHttpError(f"connection failed: {error!r}") from error
        except BaseException:
            connection.close()
            raise

    async def _open(self) -> _Connection:
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port)
        except OSError as error:
            raise RawHttpError(f"cannot connect: {error!r}") from error
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
