"""One socket write per small response instead of two.

uvicorn's HTTP cycle writes a response's head and its body with two ``transport.write``
calls, and uvloop sends each at once: two ``send`` system calls, and on loopback two wake-ups
of the client, for every small JSON answer. Those two writes were ~11% of ingest's samples
under load (``RequestResponseCycle.send``). :class:`CoalescedWrites` stands between the
cycle and the transport: a write is held until the next one (then both go out in one
writev)
or until the loop's next turn, whichever comes first, so nothing waits longer than the
callbacks already queued, and a streamed response still gets its head out before the loop
sleeps. Closing flushes what is held first; everything but writing goes to the transport.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescedWrites:
    """The transport as a cycle sees it: writes joined while the loop runs one turn."""

    __slots__ = ("_flush", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._flush: asyncio.Handle | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` with what is held (one call), or hold it for the next write."""
        if not data:
            return
        held = self._held
        if held is not None:
            self._held = None
            if self._flush is not None:
                self._flush.cancel()
                self._flush = None
            self._transport.writelines((held, data))  # one writev, no copy
            return
        self._held = data if isinstance(data, bytes) else bytes(data)
        self._flush = self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send what is held, if anything (not into a transport the protocol closed itself
        meanwhile, e.g. at shutdown: that write would fail in a loop callback)."""
        self._flush = None
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        """Flush, then close the transport (a held response must not be lost)."""
        self.flush()
        self._transport.close()

    def discard(self) -> None:
        """Forget what is held: the connection is gone."""
        self._held = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
