"""The in-process micro-cache of rendered top pages.

Entries are fresh for ``PODIUM_QUERY_CACHE_TTL_MS``; a change message for a competition
bumps its generation, which retires all of its pages at once (O(1)). Retired and expired pages
are kept (bounded) so a read that finds Redis down can still answer with the last page, marked
stale.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.http.representation import Representation
from shared.ttl_cache import TTLCache

MAX_PAGES = 10_000

PageKey = tuple[str, bytes]
"""``(competition_id, raw query string)``: parsing waits for a miss."""


@dataclass(frozen=True, slots=True)
class _CachedPage:
    representation: Representation
    generation: int


class PageCache:
    """Rendered top pages by request key, retired per competition on change."""

    def __init__(self, ttl_ms: int, max_pages: int = MAX_PAGES) -> None:
        self._pages: TTLCache[PageKey, _CachedPage] = TTLCache(
            ttl_s=ttl_ms / 1000, max_entries=max_pages
        )
        self._generations: dict[str, int] = {}

    def get(self, key: PageKey) -> Representation | None:
        """The fresh page for ``key``, or None."""
        cached = self._pages.get(key)
        if cached is None or cached.generation != self._generations.get(key[0], 0):
            return None
        return cached.representation

    def get_stale(self, key: PageKey) -> Representation | None:
        """The last page rendered for ``key``, however old (None if never or evicted)."""
        cached = self._pages.get_stale(key)
        return None if cached is None else cached.representation

    def generation(self, competition_id: str) -> int:
        """The competition's generation; take it *before* reading a page to cache."""
        return self._generations.get(competition_id, 0)

    def put(self, key: PageKey, representation: Representation, generation: int) -> None:
        """Cache a page read at ``generation`` (a page read before a change stays retired)."""
        self._pages.put(key, _CachedPage(representation, generation))

    def invalidate(self, competition_id: str) -> None:
        """Retire every cached page of the competition."""
        self._generations[competition_id] = self._generations.get(competition_id, 0) + 1
