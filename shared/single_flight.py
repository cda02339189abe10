"""Single-flight: concurrent callers asking for the same key share one execution.

Used where a miss is expensive and many readers miss together (a lost leaderboard rebuilt
from PostgreSQL, a hot cached page expiring, competitions looked up by a batch): the first
caller runs the work, the others await its result (or its exception). Nothing is remembered
once the flight lands. :meth:`SingleFlight.run_many` does the same for a set of keys loaded
by one call, so a batch's misses cost one query however many callers share them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


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
            _fail(future, error)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._flights[key]

    async def run_many(
        self, keys: Iterable[K], operation: Callable[[list[K]], Awaitable[Mapping[K, T]]]
    ) -> dict[K, T]:
        """Each key's result: keys already in flight share that flight, the others are passed
        to one call of ``operation``, which must answer every key it is given.

        A key ``operation`` leaves out fails with :class:`KeyError` for everyone waiting on it
        (rather than leaving them waiting forever).
        """
        loop = asyncio.get_running_loop()
        joined: dict[K, asyncio.Future[T]] = {}
        led: dict[K, asyncio.Future[T]] = {}
        for key in dict.fromkeys(keys):
            existing = self._flights.get(key)
            if existing is not None:
                joined[key] = existing
            else:
                led[key] = self._flights[key] = loop.create_future()
        results: dict[K, T] = {}
        if led:
            try:
                answered = await operation(list(led))
                unanswered = [key for key in led if key not in answered]
                if unanswered:
                    raise KeyError(f"the operation did not answer {unanswered!r}")
            except BaseException as error:
                for future in led.values():
                    _fail(future, error)
                raise
            finally:
                for key in led:
                    del self._flights[key]
            for key, future in led.items():
                results[key] = answered[key]
                future.set_result(answered[key])
        for key, future in joined.items():
            results[key] = await asyncio.shield(future)
        return results


def _fail(future: asyncio.Future[T], error: BaseException) -> None:
    """Hand the leader's failure to the waiters (a cancelled leader cancels the flight)."""
    if not future.done():
        if isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)
    # the leader raises the error itself; mark it retrieved so a waiter-less future does not
    # log "exception was never retrieved"
    if not future.cancelled():
        future.exception()
