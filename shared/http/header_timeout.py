"""uvicorn's httptools protocol with a deadline for the request head (slowloris).

uvicorn times out idle keep-alive connections but not a connection that is still sending its
request line and headers: a client that opens a connection and writes a header byte every
few seconds holds it (and a file descriptor) forever, and a few thousand such clients exhaust
the process. This protocol gives every request head ``timeout_keep_alive`` seconds from the
moment the connection opened or the previous response ended, then closes the connection.
The body has its own deadline in the edge middleware (``PODIUM_HTTP_BODY_TIMEOUT_S``).

Each request's cycle also writes through the connection's
:class:`~shared.http.coalesced_writes.CoalescedWrites`: a small response's head and body
leave in one system call.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.http.coalesced_writes import CoalescedWrites

logger = logging.getLogger(__name__)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """Closes a connection whose request head is not complete in time.

    The deadline is kept lazily: arming it stores a time, and one timer per connection
    checks that time when it fires (re-arming itself for the rest when a later request moved
    the deadline). A timer created and cancelled for every request was ~2% of a small POST's
    CPU under load; this way a busy keep-alive connection costs one timer per
    ``timeout_keep_alive`` seconds.
    """

    _head_timer: asyncio.TimerHandle | None = None
    _head_deadline: float | None = None
    """Loop time by which the current request head must be complete; None while none is due."""

    _writes: CoalescedWrites | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's head deadline."""
        super().connection_made(transport)
        self._writes = CoalescedWrites(transport, self.loop)
        self._arm_head_timer()

    def on_headers_complete(self) -> None:
        """The head arrived in time: the deadline no longer applies to this request. The
        request's cycle writes through :class:`CoalescedWrites` (head and body in one send)."""
        self._head_deadline = None
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle.scope is self.scope and self._writes is not None:
            cycle.transport = self._writes  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        """Start the next request's head deadline when the connection waits for one."""
        super().on_response_complete()
        # uvicorn arms its keep-alive timer only when no pipelined request is being served
        if self.timeout_keep_alive_task is not None:
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline and any held write with the connection."""
        self._head_deadline = None
        if self._writes is not None:
            self._writes.discard()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._head_deadline = self.loop.time() + self.timeout_keep_alive
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._head_deadline, self._check_head_deadline)

    def _check_head_deadline(self) -> None:
        assert self._head_timer is not None
        fired_for = self._head_timer.when()
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None:
            return  # no head is due; the next response re-arms
        if deadline > fired_for:
            # a later request moved the deadline since this timer was set
            self._head_timer = self.loop.call_at(deadline, self._check_head_deadline)
            return
        self._head_deadline = None
        if not self.transport.is_closing():
            logger.info("closing a connection whose request head is incomplete (slow headers)")
            self.transport.close()
