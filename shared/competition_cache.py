"""The in-process cache of competitions every service reads through (ingest, query, notifier).

Every score event, leaderboard read and socket handshake starts with a competition lookup,
and competitions rarely change, so:

- an entry, "no such competition" included, is trusted for ``ttl_s``; this process's own
  changes (:meth:`CompetitionCache.put`, :meth:`~CompetitionCache.invalidate`) apply at once,
  other processes' within the TTL;
- misses share their query: concurrent misses of one id are one query (single flight), a
  batch's misses are one query, the misses of different ids within one loop turn are one
  query (a cold start of 1,000 hot competitions was 1,000 queries in its first second), and
  that query also refreshes the entries that are due:
  past half their TTL, or expired less than a TTL ago (refresh-ahead: many hot
  competitions then cost a few queries per TTL, not one each). The expired ones matter most:
  entries loaded by one query expire in the same instant, so without them the first miss
  found none still fresh and every other entry of that query missed on its own (ingest
  asked PostgreSQL ~100 times a second for 1,000 hot competitions, one id at a time); a
  whole TTL back also covers traffic resuming after a pause of up to a TTL;
- when PostgreSQL fails, the last known entry is used however old (a competition rarely
  changes); a miss with nothing stale raises :class:`DependencyUnavailableError` (a 503 with
  Retry-After). For ``failure_backoff_s`` after a failure PostgreSQL is not asked again, so an
  outage does not add a connect timeout to every miss;
- at most ``max_entries`` entries are kept (the least recently stored go first), so callers
  sending random unknown ids cannot grow memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import asyncpg

from shared.competitions import get_competitions
from shared.db import POSTGRES_FAILURES
from shared.errors import DependencyUnavailableError
from shared.read_replicas import ReadPool
from shared.schemas.competition import Competition
from shared.single_flight import SingleFlight
from shared.ttl_cache import TTLCache

logger = logging.getLogger(__name__)

MAX_ENTRIES = 10_000
_MAX_REFRESH_AHEAD = 1_000  # ids refreshed early per load (one query's worth)
_UNAVAILABLE = "the competition store is unavailable"

FetchCompetitions = Callable[[list[str]], Awaitable[Mapping[str, Competition]]]
"""Reads the competitions among some ids that exist, by id (one query)."""


@dataclass(frozen=True, slots=True)
class _Known:
    """A cached answer; ``competition`` None means "no such competition" (cached too)."""

    competition: Competition | None


class CompetitionCache:
    """Competitions by id, each trusted for ``ttl_s`` seconds (see the module docstring).

    Parameters:
        fetch: one query for several ids (:meth:`from_pool` reads the competitions table).
        ttl_s: how long an entry is fresh (0: every lookup queries, concurrent ones share it).
        max_entries: the bound on entries kept, fresh or stale.
        failure_backoff_s: after a failed query, how long misses fail (or go stale) without
            asking PostgreSQL; also the Retry-After of the resulting 503.
        clock: monotonic time source (tests may pass their own).
    """

    def __init__(
        self,
        fetch: FetchCompetitions,
        *,
        ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        failure_backoff_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._refresh_within_s = ttl_s / 2
        self._failure_backoff_s = failure_backoff_s
        self._clock = clock
        self._entries: TTLCache[str, _Known] = TTLCache(
            ttl_s=ttl_s, max_entries=max_entries, clock=clock
        )
        self._flights: SingleFlight[_Known] = SingleFlight()
        self._missed: dict[str, None] = {}  # ids missed in this loop turn (see _load_missing)
        self._failed_until = -math.inf
        self._changes = 0  # put/invalidate count: a load that saw one land stores nothing

    @classmethod
    def from_pool(cls, pool: asyncpg.Pool | ReadPool, *, ttl_s: float) -> CompetitionCache:
        """A cache reading the competitions table through ``pool`` (replicas: a ReadPool)."""

        async def fetch(competition_ids: list[str]) -> Mapping[str, Competition]:
            return await get_competitions(pool, competition_ids)

        return cls(fetch, ttl_s=ttl_s)

    def cached(self, competition_id: str) -> Competition | None:
        """The competition when it is cached and fresh, else None (no I/O: for hot paths that
        take the ordinary path on None)."""
        known = self._entries.get(competition_id)
        return None if known is None else known.competition

    def put(self, competition: Competition) -> None:
        """Remember ``competition`` as just read or written (call after creating or changing
        it, so this process serves the change at once)."""
        self._changes += 1
        self._entries.put(competition.id, _Known(competition))

    def invalidate(self, competition_id: str) -> None:
        """Forget ``competition_id`` (call after changing it)."""
        self._changes += 1
        self._entries.discard(competition_id)

    async def get(self, competition_id: str) -> Competition | None:
        """The competition, or None when it does not exist.

        Raises :class:`DependencyUnavailableError` when PostgreSQL fails and it was never
        cached.
        """
        known = self._entries.get(competition_id)
        if known is not None:
            return known.competition
        return (await self._load_missing([competition_id]))[competition_id]

    async def get_many(self, competition_ids: Iterable[str]) -> dict[str, Competition | None]:
        """Each id's competition, or None when it does not exist (one query for the misses).

        Raises :class:`DependencyUnavailableError` when PostgreSQL fails and one of the
        missing ids was never cached.
        """
        found, missing = self._split(set(competition_ids))
        if missing:
            found.update(await self._load_missing(missing))
        return found

    def _split(
        self, competition_ids: Iterable[str]
    ) -> tuple[dict[str, Competition | None], list[str]]:
        """The fresh entries among ``competition_ids``, and the ids that are not."""
        found: dict[str, Competition | None] = {}
        missing: list[str] = []
        for competition_id in competition_ids:
            known = self._entries.get(competition_id)
            if known is None:
                missing.append(competition_id)
            else:
                found[competition_id] = known.competition
        return found, missing

    async def _load_missing(self, missing: list[str]) -> dict[str, Competition | None]:
        # one loop turn first, so that the misses of other ids arriving in it (the requests
        # of a cold start, or of traffic resuming) share this query: whoever resumes first
        # takes them all, the others then find their ids in flight and join
        self._missed.update(dict.fromkeys(missing))
        await asyncio.sleep(0)
        found, missing = self._split(missing)  # another caller's query may have loaded some
        if not missing:
            return found
        wanted = set(missing)
        others = [
            competition_id
            for competition_id in self._missed
            if competition_id not in wanted
            and not self._flights.in_flight(competition_id)
            and self._entries.get(competition_id) is None
        ]
        self._missed.clear()
        ahead = [
            competition_id
            for competition_id in self._entries.expiring_within(
                self._refresh_within_s,
                _MAX_REFRESH_AHEAD,
                expired_within_s=self._entries.ttl_s,
            )
            if competition_id not in wanted and not self._flights.in_flight(competition_id)
        ]
        try:
            loaded = await self._flights.run_many([*missing, *others, *ahead], self._load)
        except DependencyUnavailableError:
            # each caller falls back on its own ids: a shared flight may have failed for an id
            # only another caller needed
            stale = {cid: self._entries.get_stale(cid) for cid in missing}
            if any(known is None for known in stale.values()):
                raise
            found.update(
                {cid: known.competition for cid, known in stale.items() if known is not None}
            )
            return found
        found.update({cid: loaded[cid].competition for cid in missing})
        return found

    async def _load(self, competition_ids: list[str]) -> dict[str, _Known]:
        if self._clock() < self._failed_until:
            raise DependencyUnavailableError(_UNAVAILABLE, retry_after_s=self._failure_backoff_s)
        changes = self._changes
        try:
            rows = await self._fetch(competition_ids)
        except POSTGRES_FAILURES as error:
            self._failed_until = self._clock() + self._failure_backoff_s
            logger.warning(
                "loading competitions failed (stale entries are served, other misses are 503"
                " for %.1f s): %s: %s",
                self._failure_backoff_s,
                type(error).__name__,
                error,
            )
            raise DependencyUnavailableError(
                _UNAVAILABLE, retry_after_s=self._failure_backoff_s
            ) from error
        loaded = {cid: _Known(rows.get(cid)) for cid in competition_ids}
        if self._changes == changes:  # else a put/invalidate landed meanwhile and is newer
            for competition_id, known in loaded.items():
                self._entries.put(competition_id, known)
        return loaded
