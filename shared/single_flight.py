"""Single-flight: concurrent callers asking for the same key share one execution.

Used where a miss is expensive and many readers miss together (a lost leaderboard rebuilt
from PostgreSQL, a hot cached page expiring): the first caller runs the work, the others
await its result (or its exception). Nothing is remembered once the flight lands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Per-key de-duplication of concurrent async calls within one process."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Future[T]] = {}

    def in_flight(self, key: Hashable) -> bool:
        """Whether a call for ``key`` is running now."""
        return key in self._flights

    async def run(self, key: Hashable, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` unless a call for ``key`` is already running; share its outcome."""
        existing = self._flights.get(key)
        if existing is not None:
            # shield: one waiter being cancelled must not cancel the shared work
            return await asyncio.shield(existing)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._flights[key] = future
        try:
            result = await operation()
        except BaseException as error:
            if not future.done():
                if isinstance(error, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(error)
            # the leader raises below; mark the exception retrieved so no waiter-less
            # future logs "exception was never retrieved"
            if not future.cancelled():
                future.exception()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._flights[key]
