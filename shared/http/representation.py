"""Rendered JSON bodies with an ETag and a precomputed gzip variant, and conditional GETs.

A :class:`Representation` is built once (e.g. when a page enters a cache) and answered many
times: the ETag check and the encoding choice are then a few header lookups, with no
re-serialisation nor re-compression per request.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Send

GZIP_MIN_BYTES = 1024
_GZIP_LEVEL = 5
RawHeaders = list[tuple[bytes, bytes]]


def _etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2) of an If-None-Match header against ``etag``."""
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(
        candidate.strip().removeprefix("W/") == bare for candidate in if_none_match.split(",")
    )


@dataclass(frozen=True, slots=True)
class Representation:
    """A JSON body, its ETag, and its gzip encoding when the body is large enough."""

    body: bytes
    etag: str
    gzipped: bytes | None

    @classmethod
    def of(cls, payload: Any, *, gzip_min_bytes: int = GZIP_MIN_BYTES) -> Representation:
        """Render ``payload`` with orjson; the ETag is a hash of the identity body."""
        body = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        gzipped = (
            gzip.compress(body, compresslevel=_GZIP_LEVEL, mtime=0)
            if len(body) >= gzip_min_bytes
            else None
        )
        # weak: the gzip and identity encodings carry the same validator
        return cls(body=body, etag=f'W/"{digest}"', gzipped=gzipped)

    async def send(
        self,
        send: Send,
        *,
        if_none_match: bytes | None,
        accept_encoding: bytes | None,
        headers: RawHeaders,
    ) -> None:
        """Answer on a raw ASGI ``send`` (no Request/Response objects: for hot paths).

        ``headers`` are extra raw headers (e.g. Cache-Control); the list sent is always a new
        one, since middleware may append to it.
        """
        validator = [(b"etag", self.etag.encode()), (b"vary", b"Accept-Encoding"), *headers]
        if if_none_match is not None and _etag_matches(if_none_match.decode("latin-1"), self.etag):
            await send({"type": "http.response.start", "status": 304, "headers": validator})
            await send({"type": "http.response.body", "body": b""})
            return
        body = self.body
        if self.gzipped is not None and accept_encoding is not None and b"gzip" in accept_encoding:
            body = self.gzipped
            validator.append((b"content-encoding", b"gzip"))
        validator += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": validator})
        await send({"type": "http.response.body", "body": body})

    def respond(
        self,
        request_headers: Headers,
        *,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """200 with the body (gzip when accepted and worth it), or 304 on a matching ETag."""
        response_headers = {"etag": self.etag, "vary": "Accept-Encoding"}
        if headers:
            response_headers.update(headers)
        if_none_match = request_headers.get("if-none-match")
        if if_none_match is not None and _etag_matches(if_none_match, self.etag):
            return Response(status_code=304, headers=response_headers)
        if self.gzipped is not None and "gzip" in request_headers.get("accept-encoding", ""):
            response_headers["content-encoding"] = "gzip"
            return Response(
                self.gzipped,
                status_code=status_code,
                headers=response_headers,
                media_type="application/json",
            )
        return Response(
            self.body,
            status_code=status_code,
            headers=response_headers,
            media_type="application/json",
        )
