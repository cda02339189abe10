"""What the notifier reads: competitions (PostgreSQL, cached) and standings (Redis).

A competition whose Redis keys are gone (flushed or restarted Redis) is rebuilt from
PostgreSQL once, however many sockets ask at the same moment (single flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import asyncpg
from redis.asyncio import Redis

from shared.competitions import get_competition
from shared.leaderboard import version_key
from shared.leaderboard_store import CompetitionNotBuiltError, LeaderboardStore
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition

_T = TypeVar("_T")
_RANKS_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Standings:
    """What a snapshot shows: the version it is at least as new as, the top and some users."""

    version: int
    top: list[LeaderboardEntry]
    users: dict[str, LeaderboardEntry]


class SingleFlight:
    """Runs one call per key at a time; concurrent callers of the same key share its result."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Future[object]] = {}

    async def run(self, key: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """The result of ``call()``, or of the identical call already in flight."""
        running = self._running.get(key)
        if running is not None:
            return cast(_T, await asyncio.shield(running))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await call()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning without waiters
            raise
        finally:
            del self._running[key]
        future.set_result(result)
        return result


class NotifierRepository:
    """Competitions and standings for the sockets of one process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        key_prefix: str,
        *,
        competition_ttl_s: float,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._prefix = key_prefix
        self._store = LeaderboardStore(redis, key_prefix)
        self._competition_ttl_s = competition_ttl_s
        self._competitions: dict[str, tuple[float, Competition | None]] = {}
        self._flights = SingleFlight()

    async def competition(self, competition_id: str) -> Competition | None:
        """The competition (cached for the TTL: visibility changes apply within it)."""
        cached = self._competitions.get(competition_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self._competition_ttl_s:
            return cached[1]

        async def load() -> Competition | None:
            found = await get_competition(self._pool, competition_id)
            self._competitions[competition_id] = (time.monotonic(), found)
            return found

        return await self._flights.run(f"competition:{competition_id}", load)

    async def standings(
        self,
        competition: Competition,
        window: str,
        top_count: int,
        user_ids: Sequence[str],
        *,
        known_version: int,
    ) -> Standings:
        """A consistent-enough snapshot: the version is read first, so the data is at least
        as new as it (the ranker writes Redis before it publishes a version)."""
        stored_version = await self._redis.get(version_key(self._prefix, competition.id))
        version = max(known_version, int(stored_version) if stored_version else 0)
        users = await self.ranks(competition, window, user_ids)
        top = await self._store.top(competition.id, window, competition.sort_order, 0, top_count)
        return Standings(version=version, top=top, users=users)

    async def ranks(
        self, competition: Competition, window: str, user_ids: Sequence[str]
    ) -> dict[str, LeaderboardEntry]:
        """Rank and score of each of ``user_ids`` that is ranked (rebuilding a lost index)."""
        found: dict[str, LeaderboardEntry] = {}
        chunks = [user_ids[i : i + _RANKS_CHUNK] for i in range(0, len(user_ids), _RANKS_CHUNK)]
        for chunk in chunks or [[]]:
            try:
                ranks = await self._store.ranks(
                    competition.id, window, competition.sort_order, chunk
                )
            except CompetitionNotBuiltError:
                await self._rebuild(competition)
                ranks = await self._store.ranks(
                    competition.id, window, competition.sort_order, chunk
                )
            found.update(ranks.found)
        return found

    async def _rebuild(self, competition: Competition) -> None:
        async def rebuild() -> int:
            return await self._store.rebuild(self._pool, competition.id, competition.sort_order)

        await self._flights.run(f"rebuild:{competition.id}", rebuild)
