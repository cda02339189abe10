"""The response head written with header lines checked once, not on every response.

Why: uvicorn checks every header of every response with two regular expressions and
lower-cases its name (``RequestResponseCycle.send``), then joins the head from four pieces
per header. A Podium response carries 11-13 headers (uvicorn's ``server`` and ``date``, the
content headers, the rate-limit headers, the edge's five security headers and the request
id), nearly all of them the same bytes on every response: that was 4.9 µs per response of
ingest's ~138 µs single POST, the largest piece of uvicorn's own code in its profile.

:class:`CheckedHeadCycle` is uvicorn's cycle with the head of ``http.response.start``
written from a memo of checked header lines: a ``(name, value)`` pair is checked exactly as
uvicorn checks it the first time it is seen, and its rendered line is kept (up to
:data:`MAX_LINES` pairs; pairs seen after that are checked every time, as before). The
headers that steer the response (``content-length``, ``transfer-encoding``, ``connection``)
are never memoized: they are read on every response, as uvicorn reads them. Anything else
(a body message, a paused or closed transport, access logging on) goes to uvicorn's own
``send``. ``tests/unit/test_response_head.py`` compares bytes and cycle state with uvicorn's
over a corpus of heads, invalid ones included.
"""

from __future__ import annotations

from itertools import chain

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    RequestResponseCycle,
)

MAX_LINES = 1024
"""Checked header lines kept per process (the static ones are seen on the first response)."""
_STEERING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
_lines: dict[tuple[bytes, bytes], bytes] = {}


def _checked_line(name: bytes, value: bytes) -> tuple[bytes, bytes]:
    """uvicorn's checks of one header; its lower-cased name and its rendered line."""
    if HEADER_RE.search(name):
        raise RuntimeError("Invalid HTTP header name.")
    if HEADER_VALUE_RE.search(value):
        raise RuntimeError("Invalid HTTP header value.")
    lowered = name.lower()
    return lowered, b"".join((lowered, b": ", value, b"\r\n"))


class CheckedHeadCycle(RequestResponseCycle):
    """uvicorn's request/response cycle; the response head from checked, memoized lines."""

    async def send(self, message: ASGISendEvent) -> None:
        """The head as uvicorn writes it, each memoized header line checked only once."""
        if (
            self.response_started
            or message["type"] != "http.response.start"
            or self.flow.write_paused
            or self.disconnected
            or self.access_log
        ):
            await super().send(message)
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for pair in chain(self.default_headers, message.get("headers", ())):
            line = _lines.get(pair) if type(pair) is tuple else None
            if line is not None:
                content.append(line)
                continue
            name, value = pair
            lowered, line = _checked_line(name, value)
            content.append(line)
            if lowered not in _STEERING:
                if type(pair) is tuple and len(_lines) < MAX_LINES:
                    _lines[pair] = line
            elif lowered == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif lowered == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif lowered == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status_code not in (204, 304)
        ):
            self.chunked_encoding = True
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        self.transport.write(b"".join(content))
