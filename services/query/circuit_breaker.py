"""A small circuit breaker for calls to a dependency (Redis, PostgreSQL, Kafka).

After ``failure_threshold`` consecutive failures the breaker opens: calls fail at once with
:class:`CircuitOpenError` for ``reset_timeout_s``, so requests answer quickly instead of
queueing on a dead dependency. Then one trial call is let through (half-open): its success
closes the breaker, its failure opens it again for another cool-down.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(Exception):
    """The breaker is open: the dependency is presumed down; ``retry_after_s`` says until when."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after_s:.2f} s")
        self.name = name
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    """Counts consecutive failures of calls made through :meth:`call`.

    Parameters:
        name: what the breaker protects (used in errors and logs).
        failure_threshold: consecutive failures that open the breaker.
        reset_timeout_s: how long the breaker stays open before a trial call.
        failure_types: exceptions that count as the dependency failing; anything else
            (e.g. a bug or a domain error) passes through without touching the count.
        clock: monotonic time source (tests may pass their own).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_timeout_s: float,
        failure_types: tuple[type[BaseException], ...] = (Exception,),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.failure_types = failure_types
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """The current state (open turns half-open once the cool-down has passed)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self.reset_timeout_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def retry_after_s(self) -> float:
        """Seconds until the breaker lets a trial call through (0 when closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.reset_timeout_s - (self._clock() - self._opened_at))

    def before_call(self) -> None:
        """Raise :class:`CircuitOpenError` unless a call may go through now."""
        state = self.state
        if state is BreakerState.CLOSED:
            return
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return
        raise CircuitOpenError(self.name, self.retry_after_s() or self.reset_timeout_s)

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """A call failed: count it and open the breaker at the threshold."""
        self._failures += 1
        if self._trial_in_flight or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._trial_in_flight = False

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation`` through the breaker."""
        self.before_call()
        try:
            result = await operation()
        except self.failure_types:
            self.record_failure()
            raise
        except BaseException:
            # Not the dependency's fault (cancellation, a bug): release a trial slot only.
            self._trial_in_flight = False
            raise
        self.record_success()
        return result
