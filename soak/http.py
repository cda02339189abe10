"""The soak's HTTP client: aiohttp behind the few calls the soak makes.

Why not httpx (which the soak used first): measured on this 2-core machine against one ingest,
httpx's pool spent 2.7 ms of client CPU per POST at 8 concurrent requests and 8.2 ms at 64
(its request assignment is quadratic in queued requests, encode/httpcore#1035), so the client
topped out at 90-340 requests/s and the soak measured itself: in CI (the client traced by
coverage too) it offered 150 events/s, got ~60/s through, fell 83 s behind and ran past its
timeout. aiohttp spends ≈ 0.2-0.3 ms per request and reached 1,900 requests/s on the same
ingest. The soak only needs status, body and headers, so :class:`Reply` is a small value and
every failure to get an answer is one exception type, :data:`HTTP_ERRORS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
import orjson

HTTP_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError)
"""What a request raises when there is no answer (refused, reset, timed out)."""

_JSON = {"Content-Type": "application/json"}


class StatusError(aiohttp.ClientError):
    """An answer whose status the caller could not use (see :meth:`Reply.raise_for_status`)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: its status, headers and body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        """The body as JSON (``ValueError`` when it is not)."""
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        """The body as text."""
        return self.content.decode(errors="replace")

    def raise_for_status(self) -> None:
        """Raise :class:`StatusError` (one of :data:`HTTP_ERRORS`) unless the status is 2xx."""
        if not 200 <= self.status_code < 300:
            raise StatusError(f"HTTP {self.status_code}: {self.text[:200]}")


class SoakClient:
    """A pooled HTTP client (one per run); use as ``async with SoakClient(...) as client``."""

    def __init__(self, *, timeout_s: float = 5.0, max_connections: int = 256) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SoakClient:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=self._max_connections),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(
        self,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Reply:
        """GET ``url``."""
        return await self._request("GET", url, params=params, headers=headers, timeout_s=timeout_s)

    async def post(
        self,
        url: str,
        *,
        json: Any,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Reply:
        """POST ``json`` to ``url``."""
        return await self._request(
            "POST",
            url,
            data=orjson.dumps(json),
            headers={**_JSON, **(headers or {})},
            timeout_s=timeout_s,
        )

    async def _request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str | int] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Reply:
        if self._session is None:
            raise RuntimeError("SoakClient used outside 'async with'")
        timeout = self._timeout if timeout_s is None else aiohttp.ClientTimeout(total=timeout_s)
        async with self._session.request(
            method, url, params=params, data=data, headers=headers, timeout=timeout
        ) as response:
            content = await response.read()
            return Reply(response.status, dict(response.headers), content)
