"""Request-body deadlines kept by one coarse sweep instead of a timer per request.

Why: the edge gives every request body a deadline (uvicorn has none, see
:mod:`shared.http.middleware`). An ``asyncio.timeout`` scope around each ``receive`` creates
and cancels a timer handle on the event loop every time, ~3% of a small POST's CPU under
load, although a small body has almost always arrived with the head and the ``receive``
returns at once. Here a waiting ``receive`` registers its task and deadline in a dict, and
one sweep every ``resolution_s`` (scheduled only while something is registered) cancels the
tasks whose deadline passed; the waiter turns that cancellation into
:class:`BodyTimedOut`. A body is cut off at most ``resolution_s`` after its deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
DEFAULT_RESOLUTION_S = 0.1


class BodyTimedOut(Exception):
    """The body did not arrive before its deadline."""


class BodyDeadlines:
    """The tasks waiting for a body, each with its deadline (``time.perf_counter`` s)."""

    def __init__(self, resolution_s: float = DEFAULT_RESOLUTION_S) -> None:
        self.resolution_s = resolution_s
        self._due: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    async def wait(self, deadline: float, receive: Callable[[], Awaitable[T]]) -> T:
        """``await receive()``, raising :class:`BodyTimedOut` once ``deadline`` passed."""
        task = asyncio.current_task()
        assert task is not None
        self._due[task] = deadline
        loop = asyncio.get_running_loop()
        # (an app served by a later event loop, as tests do, gets a sweep of its own)
        if self._sweep_handle is None or self._sweep_loop is not loop:
            self._sweep_loop = loop
            self._sweep_handle = loop.call_later(self.resolution_s, self._sweep)
        try:
            return await receive()
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            # our cancellation is consumed; one requested by someone else still stands
            if task.uncancel() > 0:
                raise
            raise BodyTimedOut from None
        finally:
            self._due.pop(task, None)
            self._expired.discard(task)

    def _sweep(self) -> None:
        self._sweep_handle = None
        now = time.perf_counter()
        for task, deadline in list(self._due.items()):
            if deadline <= now:
                del self._due[task]
                self._expired.add(task)
                task.cancel()
        if self._due:
            self._sweep_handle = asyncio.get_running_loop().call_later(
                self.resolution_s, self._sweep
            )
