"""The edge middleware: request id, security headers, body size and time limits, HTTP metrics.

One pure-ASGI class rather than several ``BaseHTTPMiddleware`` layers: it runs on every
request, so it stays cheap.
"""

from __future__ import annotations

import re
import time

import orjson
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.body_deadline import BodyDeadlines, BodyTimedOut
from shared.logging import new_request_id, request_id_var
from shared.metrics import HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID_HEADER = "x-request-id"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "strict-transport-security": "max-age=63072000; includeSubDomains",
    "content-security-policy": "default-src 'self'",
    "referrer-policy": "no-referrer",
}
_RAW_SECURITY_HEADERS = [
    (name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
]
_RAW_REQUEST_ID_HEADER = REQUEST_ID_HEADER.encode()
# a client-chosen method must not create unbounded metric series
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _BodyTooLarge(Exception):
    pass


class EdgeMiddleware:
    """Applies the edge rules to every HTTP request (WebSockets get only the request id)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        max_body_bytes: int,
        body_timeout_s: float | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self._body_deadlines = BodyDeadlines()
        self._in_flight = HTTP_IN_FLIGHT.labels(service)
        # labelled children are looked up once per (route, method, status), not per request
        self._request_counters: dict[tuple[str, str, int], Counter] = {}
        self._latency_histograms: dict[str, Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = self._request_id(scope)
        token = request_id_var.set(request_id)
        try:
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send, request_id)
        finally:
            request_id_var.reset(token)

    @staticmethod
    def _request_id(scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate: str = value.decode("latin-1")
                if _VALID_REQUEST_ID.fullmatch(candidate):
                    return candidate
                break
        return new_request_id()

    async def _http(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        started = time.perf_counter()
        status = 500
        response_started = False

        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(send, request_id)
            self._observe(scope, 413, started)
            return

        received = 0
        body_complete = False
        # uvicorn has no body-read timeout: a client that sends headers and then dribbles its
        # body would hold the request (and its worker resources) forever. One deadline for the
        # whole body, not per chunk, so a byte every few seconds does not keep it alive.
        body_deadline = None if self.body_timeout_s is None else started + self.body_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_complete
            if body_complete or body_deadline is None:
                message = await receive()
            else:
                message = await self._body_deadlines.wait(body_deadline, receive)
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
                if not message.get("more_body", False):
                    body_complete = True
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                if b"content-security-policy" in present and any(
                    b"frame-ancestors" in value
                    for name, value in headers
                    if name.lower() == b"content-security-policy"
                ):
                    # a response that states its own frame-ancestors (the live page's embed
                    # mode) decides who may frame it; a default X-Frame-Options: DENY would
                    # contradict it in browsers that still read that header
                    present.add(b"x-frame-options")
                headers += [item for item in _RAW_SECURITY_HEADERS if item[0] not in present]
                headers.append((_RAW_REQUEST_ID_HEADER, request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        self._in_flight.inc()
        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            if not response_started:
                await self._too_large(send, request_id)
            status = 413
        except BodyTimedOut:
            if not response_started:
                await self._body_timed_out(send, request_id)
            status = 408
        finally:
            self._in_flight.dec()
            self._observe(scope, status, started)

    async def _too_large(self, send: Send, request_id: str) -> None:
        await _send_error(
            send,
            request_id,
            413,
            {
                "code": "payload_too_large",
                "message": f"the body exceeds {self.max_body_bytes} bytes",
                "details": {"max_bytes": self.max_body_bytes},
            },
        )

    async def _body_timed_out(self, send: Send, request_id: str) -> None:
        # ``connection: close`` makes uvicorn drop the connection after the answer instead of
        # waiting for the rest of a body that may never come
        await _send_error(
            send,
            request_id,
            408,
            {
                "code": "request_timeout",
                "message": f"the body did not arrive within {self.body_timeout_s:g} s",
                "details": {"timeout_s": self.body_timeout_s},
            },
            extra_headers=[(b"connection", b"close")],
        )

    def _observe(self, scope: Scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "OTHER"
        key = (template, method, status)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = HTTP_REQUESTS.labels(self.service, template, method, str(status))
            self._request_counters[key] = counter
        counter.inc()
        histogram = self._latency_histograms.get(template)
        if histogram is None:
            histogram = HTTP_LATENCY.labels(self.service, template)
            self._latency_histograms[template] = histogram
        histogram.observe(time.perf_counter() - started)


async def _send_error(
    send: Send,
    request_id: str,
    status: int,
    error: dict[str, object],
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with the standard JSON error body and the edge headers."""
    body = orjson.dumps({"error": error})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
    headers += extra_headers or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
