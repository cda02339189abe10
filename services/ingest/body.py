"""Reading JSON request bodies with the edge checks: 415, 413, 400."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from shared.errors import BadRequestError, PayloadTooLargeError, UnsupportedMediaTypeError


async def read_json_body(request: Request, *, max_bytes: int) -> Any:
    """The parsed JSON body of ``request``.

    Raises 415 unless the content type is ``application/json``, 413 when the body is larger
    than ``max_bytes`` (checked while reading, not only from Content-Length) and 400 when the
    body is not valid UTF-8 JSON.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaTypeError(
            "the body must be JSON (Content-Type: application/json)",
            details={"content_type": media_type or None},
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(
            f"the body exceeds {max_bytes} bytes", details={"max_bytes": max_bytes}
        )
    chunks = []
    size = 0
    # the ASGI messages read directly: ``request.stream()`` is an async generator, whose
    # machinery cost more than the rest of this function for a small body
    more_body = True
    while more_body:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        more_body = message.get("more_body", False)
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(
                f"the body exceeds {max_bytes} bytes", details={"max_bytes": max_bytes}
            )
        chunks.append(chunk)
    try:
        return orjson.loads(chunks[0] if len(chunks) == 1 else b"".join(chunks))
    except orjson.JSONDecodeError as error:
        raise BadRequestError(
            "the body is not valid JSON", details={"reason": str(error)}
        ) from error
