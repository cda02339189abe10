"""What the notifier reads: competitions (PostgreSQL, cached) and standings (Redis).

A competition whose Redis keys are gone (flushed or restarted Redis) is rebuilt from
PostgreSQL once, however many sockets ask at the same moment (single flight). Competition
lookups may read a replica; a rebuild always reads the primary, so the version it stamps is
the one of the standings it wrote (docs/operations.md, read replicas).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.competition_cache import CompetitionCache
from shared.db import POSTGRES_FAILURES
from shared.entrants import attempts_left
from shared.errors import DependencyUnavailableError
from shared.leaderboard_store import CompetitionNotBuiltError, LeaderboardStore, UserRanks
from shared.read_replicas import ReadPool
from shared.redis_client import RedisClient
from shared.redis_keys import version_key
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition
from shared.single_flight import SingleFlight
from shared.teams import boards_of, competition_of

_RANKS_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class Standings:
    """What a snapshot shows: the version it is at least as new as, the top and some users."""

    version: int
    top: list[LeaderboardEntry]
    users: dict[str, LeaderboardEntry]


class NotifierRepository:
    """Competitions and standings for the sockets of one process."""

    def __init__(
        self,
        pool: ReadPool,
        redis: RedisClient,
        key_prefix: str,
        *,
        competition_ttl_s: float,
    ) -> None:
        self._primary = pool.primary  # rebuilds read the primary
        self._pool = pool
        self._redis = redis
        self._prefix = key_prefix
        self._store = LeaderboardStore(redis, key_prefix)
        self._competitions = CompetitionCache.from_pool(pool, ttl_s=competition_ttl_s)
        self._rebuilds: SingleFlight[int] = SingleFlight()

    async def competition(self, competition_id: str) -> Competition | None:
        """The competition (cached for the TTL: visibility changes apply within it); for a
        team board's id, the board (None when its competition has no team board any more).

        Raises :class:`~shared.errors.DependencyUnavailableError` when PostgreSQL fails and
        the competition was never cached.
        """
        competition = await self._competitions.get(competition_of(competition_id))
        if competition is None or competition.id == competition_id:
            return competition
        board: Competition | None = boards_of({competition.id: competition}, [competition_id]).get(
            competition_id
        )
        return board

    async def attempts(
        self, competition: Competition, window: str, user_id: str
    ) -> dict[str, object] | None:
        """A user's attempts read for ``window`` (None without ``max_attempts``; raises
        :class:`~shared.errors.DependencyUnavailableError` when PostgreSQL fails)."""
        try:
            return await attempts_left(self._pool, competition, window, user_id, datetime.now(UTC))
        except POSTGRES_FAILURES as error:
            raise DependencyUnavailableError("the attempts could not be read") from error

    def forget(self, competition_id: str) -> None:
        """Drop the cached competition (it was deleted: the next lookup asks PostgreSQL)."""
        self._competitions.invalidate(competition_id)

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
        top = await self._store.top(
            competition.id, window, competition.sort_order, 0, top_count, competition.rank_style
        )
        return Standings(version=version, top=top, users=users)

    async def ranks(
        self, competition: Competition, window: str, user_ids: Sequence[str]
    ) -> dict[str, LeaderboardEntry]:
        """Rank (in the competition's rank style) and score of each of ``user_ids`` that is
        ranked (rebuilding a lost index)."""
        found: dict[str, LeaderboardEntry] = {}
        chunks = [user_ids[i : i + _RANKS_CHUNK] for i in range(0, len(user_ids), _RANKS_CHUNK)]
        for chunk in chunks or [[]]:
            try:
                ranks = await self._store.ranks(
                    competition.id, window, competition.sort_order, chunk, competition.rank_style
                )
            except CompetitionNotBuiltError:
                await self._rebuild(competition)
                ranks = await self._store.ranks(
                    competition.id, window, competition.sort_order, chunk, competition.rank_style
                )
            found.update(ranks.found)
        return found

    async def user_ranks(
        self, competition: Competition, window: str, user_ids: Sequence[str]
    ) -> UserRanks:
        """Rank, score and percentile of each ranked user of ``user_ids`` and the window's
        total (the live page's viewer card), rebuilding a lost index."""
        try:
            return await self._store.ranks(
                competition.id, window, competition.sort_order, user_ids, competition.rank_style
            )
        except CompetitionNotBuiltError:
            await self._rebuild(competition)
            return await self._store.ranks(
                competition.id, window, competition.sort_order, user_ids, competition.rank_style
            )

    async def _rebuild(self, competition: Competition) -> None:
        async def rebuild() -> int:
            return await self._store.rebuild(self._primary, competition.id, competition.sort_order)

        await self._rebuilds.run(competition.id, rebuild)
