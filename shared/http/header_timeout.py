"""uvicorn's httptools protocol with a deadline for the request head (slowloris).

uvicorn times out idle keep-alive connections but not a connection that is still sending its
request line and headers: a client that opens a connection and writes a header byte every
few seconds holds it (and a file descriptor) forever, and a few thousand such clients exhaust
the process. This protocol gives every request head ``timeout_keep_alive`` seconds from the
moment the connection opened or the previous response ended, then closes the connection.
The body has its own deadline in the edge middleware (``PODIUM_HTTP_BODY_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete in time."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's head deadline."""
        super().connection_made(transport)
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        """The head arrived in time: the deadline no longer applies to this request."""
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """Start the next request's head deadline when the connection waits for one."""
        super().on_response_complete()
        # uvicorn arms its keep-alive timer only when no pipelined request is being served
        if self.timeout_keep_alive_task is not None:
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            logger.info("closing a connection whose request head is incomplete (slow headers)")
            self.transport.close()
