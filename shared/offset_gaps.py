"""Offsets a fetch skipped: fetch them again, unless the gap stays (then it is real).

A partition's offsets are consecutive on a topic written without transactions, so records
that do not start where the last ones ended mean the broker handed out a later batch while
an earlier one was not readable yet. The dev broker does (tansu raises the high watermark
before it stores a batch: with two producers on one partition a fetch can see the later
batch first; docs/soak.md, "Accepted events lost: the cause"); a consumer that moves on
never reads the earlier batch. So each consumer fetches the partition again from the first
missing offset, which works as soon as the broker has stored it. A gap that stands for
``wait_s`` is taken as real (transaction markers leave such offsets on Kafka).
"""

from __future__ import annotations

import time
from collections.abc import Hashable


class GapWatch:
    """Per partition, the first missing offset and since when it has been missing."""

    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._open: dict[Hashable, tuple[int, float]] = {}

    def fetch_again(self, partition: Hashable, missing_from: int) -> bool:
        """Whether to fetch ``partition`` again from ``missing_from`` (False: the same gap has
        stood for ``wait_s``; take the records after it)."""
        now = time.monotonic()
        seen = self._open.get(partition)
        if seen is None or seen[0] != missing_from:
            seen = self._open[partition] = (missing_from, now)
        if now - seen[1] >= self.wait_s:
            del self._open[partition]
            return False
        return True

    def closed(self, partition: Hashable) -> None:
        """``partition``'s records were consecutive again."""
        self._open.pop(partition, None)

    def open_since_s(self, partition: Hashable) -> float:
        """How long ``partition``'s gap has been open (0: none)."""
        seen = self._open.get(partition)
        return time.monotonic() - seen[1] if seen else 0.0
