"""Error responses: every error body is ``{"error": {"code", "message", "details"?}}``.

Domain errors (:mod:`shared.errors`) are mapped to HTTP here and nowhere else.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ExceptionHandler

from shared.errors import DependencyUnavailableError, PodiumError, RateLimitedError
from shared.http.responses import JSONResponse

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The standard JSON error response."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status_code, headers=headers)


def validation_details(
    error: ValidationError, *, prefix: tuple[str | int, ...] = ()
) -> list[dict[str, str]]:
    """One ``{field, message, type}`` per problem; ``field`` is a dotted path."""
    return [
        {
            "field": ".".join(str(part) for part in (*prefix, *item["loc"])) or "body",
            "message": item["msg"],
            "type": item["type"],
        }
        for item in error.errors(include_url=False, include_context=False, include_input=False)
    ]


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


async def podium_error_handler(request: Request, exc: Exception) -> Response:
    """Map a :class:`PodiumError` to its status code and JSON body."""
    assert isinstance(exc, PodiumError)
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimitedError | DependencyUnavailableError):
        headers["Retry-After"] = _retry_after(exc.retry_after_s)
    if exc.status_code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="podium"'
    # an error may carry its own headers (e.g. RateLimit-* on a 429)
    headers.update(getattr(exc, "headers", None) or {})
    return error_response(
        exc.status_code, exc.code, exc.message, details=exc.details, headers=headers
    )


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """A pydantic error that escaped a route: 422 naming each field."""
    assert isinstance(exc, ValidationError)
    return error_response(
        422,
        "validation_failed",
        "the request does not match the schema",
        details=validation_details(exc),
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (404 unknown route, 405 wrong method) in the JSON shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with its traceback, answered as a bare 500."""
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "internal server error")


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    PodiumError: podium_error_handler,
    ValidationError: validation_error_handler,
    HTTPException: http_exception_handler,
    Exception: unhandled_error_handler,
}
