"""Key → partition exactly as aiokafka's default partitioner places it, memoized per key.

aiokafka's ``DefaultPartitioner`` runs a pure-Python murmur2 for every record (≈10 µs); a
500-event batch over a few hundred competitions pays that for every event. The hash of a key
never changes, so it is computed once per key; the partition is still ``hash % count`` of
the topic's sorted partition list, so records land where the producer's own partitioner
(and every other producer of the topic) puts them and per-key order holds.
"""

from __future__ import annotations

from collections.abc import Collection

from aiokafka.partitioner import murmur2

MAX_CACHED_KEYS = 100_000


class KeyPartitioner:
    """Memoized murmur2 of record keys (bounded: cleared when it holds too many keys)."""

    def __init__(self, max_keys: int = MAX_CACHED_KEYS) -> None:
        self._hashes: dict[bytes, int] = {}
        self._max_keys = max_keys

    def partition(self, key: bytes, partitions: Collection[int]) -> int:
        """The partition aiokafka's ``DefaultPartitioner`` picks for ``key``."""
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        ordered = partitions if isinstance(partitions, list) else sorted(partitions)
        return int(ordered[hashed % len(ordered)])
