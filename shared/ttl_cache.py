"""A bounded in-process cache whose entries expire, and can still be read stale.

Fresh reads (:meth:`TTLCache.get`) only return entries younger than the TTL. Expired entries
stay (until evicted) so a caller whose dependency is down can fall back to the last known
value with :meth:`TTLCache.get_stale`, saying so to its client.
"""

from __future__ import annotations

import bisect
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
        # every put's (expiry, key) in put order, for expiring_within to bisect: one TTL for
        # all, so a non-decreasing clock keeps it sorted. A key put again, evicted or
        # discarded leaves its old pair behind (checked against the entry when read); the
        # lists are rebuilt from the entries once they hold twice as many pairs.
        self._expiries: list[float] = []
        self._expiry_keys: list[K] = []

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
        expires_at = self._clock() + self.ttl_s
        self._entries[key] = _Entry(value, expires_at)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        if self._expiries and expires_at < self._expiries[-1]:  # the clock went back
            self._rebuild_expiries()
        else:
            self._expiries.append(expires_at)
            self._expiry_keys.append(key)
            if len(self._expiries) > 2 * len(self._entries) + 64:
                self._rebuild_expiries()

    def _rebuild_expiries(self) -> None:
        live = sorted(
            ((entry.expires_at, key) for key, entry in self._entries.items()),
            key=lambda pair: pair[0],
        )
        self._expiries = [expires_at for expires_at, _ in live]
        self._expiry_keys = [key for _, key in live]

    def discard(self, key: K) -> None:
        """Forget ``key`` (fresh or stale); a missing key is fine."""
        self._entries.pop(key, None)

    def expiring_within(
        self, seconds: float, limit: int, *, expired_within_s: float = 0.0
    ) -> list[K]:
        """Up to ``limit`` keys still fresh but expiring within ``seconds`` (and, with
        ``expired_within_s``, those expired at most that long ago), soonest first.

        For refresh-ahead: reloading them with a miss keeps hot entries from expiring one by
        one. It is asked on every miss, so it must not walk the expired entries kept for stale
        reads: a bisect of the expiry list finds the first one due (a walk from the
        oldest cost the notifier 43% of its CPU with 10,000 rooms refreshing their
        competitions, issue #18).
        """
        now = self._clock()
        horizon = now + seconds
        keys: list[K] = []
        seen: set[K] = set()  # a key put twice at one clock reading has two equal pairs
        index = bisect.bisect_right(self._expiries, now - max(0.0, expired_within_s))
        while index < len(self._expiries) and len(keys) < limit:
            expires_at = self._expiries[index]
            if expires_at >= horizon:
                break
            key = self._expiry_keys[index]
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at == expires_at and key not in seen:
                keys.append(key)  # (an older pair of a key put again since does not match)
                seen.add(key)
            index += 1
        return keys

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._expiries.clear()
        self._expiry_keys.clear()
