"""A short-lived in-process cache of competitions, so admission does not query per event.

Entries (including "no such competition") live ``competition_cache_ttl_s``; this process's
own changes invalidate them at once. Misses are loaded in one query under a lock so an
expiry under load costs one query, not one per request. When PostgreSQL fails, a stale
entry is still used (the competition rarely changes) and a missing one is a 503.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

import asyncpg

from shared.competitions import get_competitions
from shared.errors import DependencyUnavailableError
from shared.schemas.competition import Competition

logger = logging.getLogger(__name__)

_FAILURE_BACKOFF_S = 1.0
_MAX_ENTRIES = 10_000  # bounds memory when callers post many unknown competition ids
_MAX_REFRESH_AHEAD = 1_000  # ids refreshed early per load (one query's worth)


class CompetitionCache:
    """Competitions by id, each trusted for ``ttl_s`` seconds."""

    def __init__(
        self, pool: asyncpg.Pool, ttl_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._pool = pool
        self._ttl_s = ttl_s
        self._clock = clock
        self._entries: dict[str, tuple[float, Competition | None]] = {}
        self._lock = asyncio.Lock()
        self._failed_until = 0.0

    def invalidate(self, competition_id: str) -> None:
        """Forget ``competition_id`` (call after changing it)."""
        self._entries.pop(competition_id, None)

    def put(self, competition: Competition) -> None:
        """Remember ``competition`` as just read or written."""
        self._entries[competition.id] = (self._clock() + self._ttl_s, competition)

    async def get_many(self, competition_ids: Collection[str]) -> dict[str, Competition | None]:
        """Each id's competition, or None when it does not exist."""
        found, missing = self._fresh(competition_ids)
        if missing:
            async with self._lock:
                found_now, missing = self._fresh(missing)
                found.update(found_now)
                if missing:
                    loaded = await self._load([*missing, *self._expiring_soon(missing)])
                    found.update((cid, loaded[cid]) for cid in missing)
        return found

    def _expiring_soon(self, loading: Collection[str]) -> list[str]:
        """Entries past half their TTL, refreshed in the same query as a miss: with many
        competitions under load, expiries then cost a few queries per TTL, not one each."""
        horizon = self._clock() + self._ttl_s / 2
        skip = set(loading)
        soon = [
            cid
            for cid, (expires_at, _) in self._entries.items()
            if expires_at < horizon and cid not in skip
        ]
        return soon[:_MAX_REFRESH_AHEAD]

    async def get(self, competition_id: str) -> Competition | None:
        """The competition, or None when it does not exist."""
        return (await self.get_many([competition_id]))[competition_id]

    def _fresh(
        self, competition_ids: Collection[str]
    ) -> tuple[dict[str, Competition | None], list[str]]:
        now = self._clock()
        found: dict[str, Competition | None] = {}
        missing: list[str] = []
        for competition_id in set(competition_ids):
            entry = self._entries.get(competition_id)
            if entry is not None and entry[0] > now:
                found[competition_id] = entry[1]
            else:
                missing.append(competition_id)
        return found, missing

    async def _load(self, competition_ids: list[str]) -> dict[str, Competition | None]:
        try:
            if self._clock() < self._failed_until:
                raise ConnectionError("PostgreSQL failed moments ago")
            rows = await get_competitions(self._pool, competition_ids)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            if self._clock() >= self._failed_until:
                logger.warning("loading competitions failed: %s: %s", type(error).__name__, error)
                self._failed_until = self._clock() + _FAILURE_BACKOFF_S
            stale = {cid: self._entries[cid][1] for cid in competition_ids if cid in self._entries}
            if len(stale) == len(competition_ids):
                return stale
            raise DependencyUnavailableError(
                "competitions cannot be read right now", retry_after_s=_FAILURE_BACKOFF_S
            ) from error
        if len(self._entries) > _MAX_ENTRIES:
            now = self._clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) > _MAX_ENTRIES:
                self._entries.clear()
        expires_at = self._clock() + self._ttl_s
        loaded: dict[str, Competition | None] = {cid: rows.get(cid) for cid in competition_ids}
        for competition_id, competition in loaded.items():
            self._entries[competition_id] = (expires_at, competition)
        return loaded
