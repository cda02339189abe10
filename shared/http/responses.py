"""Fast JSON responses (orjson)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class JSONResponse(_StarletteJSONResponse):
    """``application/json`` rendered with orjson (datetimes as RFC 3339)."""

    def render(self, content: Any) -> bytes:
        """Serialise ``content``; pydantic models should be dumped first."""
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class EncodedJSONResponse(Response):
    """``application/json`` from an encoded body and ASGI header pairs, for a hot endpoint.

    Starlette's ``Response`` encodes every header, scans the list for content-length and
    content-type and checks for a WebSocket denial on every call: ~4% of a small POST's CPU
    under load (the ingest's 202). Here the headers are given as bytes and the two messages
    sent as they are; HTTP only, no background task.
    """

    def __init__(
        self, body: bytes, status_code: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        self.status_code = status_code
        self.body = body
        self.background = None
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
            *headers,
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the head and the body."""
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        await send({"type": "http.response.body", "body": self.body})
