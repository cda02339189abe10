"""A bounded in-process cache whose entries expire, and can still be read stale.

Fresh reads (:meth:`TTLCache.get`) only return entries younger than the TTL. Expired entries
stay (until evicted) so a caller whose dependency is down can fall back to the last known
value with :meth:`TTLCache.get_stale`, saying so to its client.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class TTLCache(Generic[K, V]):
    """Least-recently-stored eviction past ``max_entries``; expiry after ``ttl_s``.

    Parameters:
        ttl_s: how long an entry is fresh (0 disables fresh hits; stale reads still work).
        max_entries: the bound on entries kept, fresh or stale.
        clock: monotonic time source (tests may pass their own).
    """

    def __init__(
        self, *, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The fresh value of ``key``, or None (missing or expired)."""
        entry = self._entries.get(key)
        if entry is None or entry.expires_at <= self._clock():
            return None
        return entry.value

    def get_stale(self, key: K) -> V | None:
        """The value of ``key`` even if expired, or None when it was never stored or evicted."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def put(self, key: K, value: V) -> None:
        """Store ``value`` as fresh for the TTL."""
        self._entries[key] = _Entry(value, self._clock() + self.ttl_s)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        """Forget ``key`` (fresh or stale); a missing key is fine."""
        self._entries.pop(key, None)

    def expiring_within(self, seconds: float, limit: int) -> list[K]:
        """Up to ``limit`` keys still fresh but expiring within ``seconds``, soonest first.

        For refresh-ahead: reloading them with a miss keeps hot entries from expiring one by
        one. Every entry lives the same TTL, so storage order is expiry order and the scan
        stops at the first entry expiring later.
        """
        now = self._clock()
        horizon = now + seconds
        keys: list[K] = []
        for key, entry in self._entries.items():
            if entry.expires_at >= horizon or len(keys) >= limit:
                break
            if entry.expires_at > now:
                keys.append(key)
        return keys

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
