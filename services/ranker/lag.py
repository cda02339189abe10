"""Consumer lag, measured without the broker's end offsets (the dev broker misreports them).

Record lag is the partition's high watermark, as the last fetch response reported it, minus
the offset this process committed. Time lag is how long a partition has had records pending:
zero while caught up, then growing until the ranker catches up again, so a stalled or slowly
falling-behind ranker shows up even when it commits nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from services.ranker import metrics


class LagTracker:
    """Keeps the lag gauges of the partitions this process commits."""

    def __init__(self, highwater: Callable[[Any], int | None]) -> None:
        self._highwater = highwater
        self._committed: dict[Any, int] = {}
        self._caught_up_at: dict[Any, float] = {}

    def committed(self, offsets: dict[Any, int]) -> None:
        """Record offsets just committed and refresh the gauges."""
        self._committed.update(offsets)
        self.refresh(offsets)

    def refresh(self, partitions: Iterable[Any] | None = None) -> None:
        """Recompute the gauges (all known partitions by default)."""
        now = time.monotonic()
        for tp in list(partitions if partitions is not None else self._committed):
            committed = self._committed.get(tp)
            highwater = self._highwater(tp)
            if committed is None or highwater is None:
                continue
            pending = max(0, highwater - committed)
            if pending == 0:
                self._caught_up_at[tp] = now
            caught_up_at = self._caught_up_at.setdefault(tp, now)
            label = str(tp.partition)
            metrics.CONSUMER_LAG_RECORDS.labels(label).set(pending)
            metrics.CONSUMER_LAG_S.labels(label).set(now - caught_up_at if pending else 0.0)
            metrics.COMMITTED_OFFSET.labels(label).set(committed)

    def forget(self, partitions: Iterable[Any]) -> None:
        """Stop reporting partitions this process no longer owns."""
        for tp in partitions:
            self._committed.pop(tp, None)
            self._caught_up_at.pop(tp, None)
            for gauge in (
                metrics.CONSUMER_LAG_RECORDS,
                metrics.CONSUMER_LAG_S,
                metrics.COMMITTED_OFFSET,
            ):
                with contextlib.suppress(KeyError):
                    gauge.remove(str(tp.partition))
