"""Competition metadata for the read API: cached briefly, with visibility enforced here.

Every leaderboard read starts with a competition lookup, so lookups come from an in-process
cache (``PODIUM_COMPETITION_CACHE_TTL_S``), unknown ids included, and concurrent misses of one
id share a single query. When PostgreSQL does not answer, the last known row is used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import HTTPConnection

from shared.auth import Scope
from shared.competitions import get_competition, list_competitions
from shared.errors import AuthenticationError, DependencyUnavailableError, NotFoundError
from shared.http.auth import optional_principal
from shared.schemas.competition import Competition, Visibility
from shared.settings import Settings
from shared.single_flight import SingleFlight
from shared.ttl_cache import TTLCache

logger = logging.getLogger(__name__)

POSTGRES_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class _Lookup:
    competition: Competition | None


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """A window that has standings, and how many users it ranks."""

    window: str
    entrants: int


def not_found(competition_id: str) -> NotFoundError:
    """The one 404 for a competition that is missing or not visible to the caller."""
    return NotFoundError(
        f"no competition {competition_id!r}", details={"competition_id": competition_id}
    )


def may_read_private(connection: HTTPConnection, settings: Settings) -> bool:
    """Whether the caller's token allows private competitions (a bad token is a 401)."""
    principal = optional_principal(connection, settings)
    return principal is not None and principal.has(Scope.LEADERBOARDS_READ)


class CompetitionCatalog:
    """Looks competitions up (cached) and decides who may read them."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings
        ttl_s = settings.competition_cache_ttl_s
        self._competitions: TTLCache[str, _Lookup] = TTLCache(ttl_s=ttl_s, max_entries=_MAX_CACHED)
        self._windows: TTLCache[str, list[WindowSummary]] = TTLCache(
            ttl_s=ttl_s, max_entries=_MAX_CACHED
        )
        self._flights: SingleFlight[Any] = SingleFlight()

    def cached(self, competition_id: str) -> Competition | None:
        """The competition when it is cached and fresh (no I/O), else None."""
        cached = self._competitions.get(competition_id)
        return None if cached is None else cached.competition

    async def get(self, competition_id: str) -> Competition | None:
        """The competition, or None when it does not exist."""
        cached = self._competitions.get(competition_id)
        if cached is not None:
            return cached.competition
        lookup = await self._flights.run(
            ("competition", competition_id), lambda: self._load(competition_id)
        )
        assert isinstance(lookup, _Lookup)
        return lookup.competition

    async def _load(self, competition_id: str) -> _Lookup:
        try:
            lookup = _Lookup(await get_competition(self.pool, competition_id))
        except POSTGRES_ERRORS as error:
            stale = self._competitions.get_stale(competition_id)
            if stale is not None:
                logger.warning("PostgreSQL unavailable, using cached %s: %s", competition_id, error)
                return stale
            raise DependencyUnavailableError("the competition store is unavailable") from error
        self._competitions.put(competition_id, lookup)
        return lookup

    async def readable(self, connection: HTTPConnection, competition_id: str) -> Competition:
        """The competition if the caller may read it.

        Public ones need no token. Private ones answer 401 without a token and 404 (the same
        answer as for a missing competition) when the token lacks ``leaderboards:read``.
        """
        competition = await self.get(competition_id)
        if competition is None:
            if "authorization" in connection.headers:
                optional_principal(connection, self.settings)  # a bad token is still a 401
            raise not_found(competition_id)
        if competition.visibility is Visibility.PUBLIC:
            if "authorization" in connection.headers:
                optional_principal(connection, self.settings)
            return competition
        principal = optional_principal(connection, self.settings)
        if principal is None:
            raise AuthenticationError(
                "a bearer token with the 'leaderboards:read' scope is required"
            )
        if not principal.has(Scope.LEADERBOARDS_READ):
            raise not_found(competition_id)
        return competition

    async def windows(self, competition_id: str) -> list[WindowSummary]:
        """The windows that hold standings, with their entrant counts (from PostgreSQL)."""
        cached = self._windows.get(competition_id)
        if cached is not None:
            return cached
        summaries = await self._flights.run(
            ("windows", competition_id), lambda: self._load_windows(competition_id)
        )
        assert isinstance(summaries, list)
        return summaries

    async def _load_windows(self, competition_id: str) -> list[WindowSummary]:
        try:
            rows = await self.pool.fetch(
                "SELECT window_label, count(*) AS entrants FROM standings"
                " WHERE competition_id = $1 GROUP BY window_label ORDER BY window_label",
                competition_id,
            )
        except POSTGRES_ERRORS as error:
            stale = self._windows.get_stale(competition_id)
            if stale is not None:
                return stale
            raise DependencyUnavailableError("the competition store is unavailable") from error
        summaries = [WindowSummary(row["window_label"], row["entrants"]) for row in rows]
        self._windows.put(competition_id, summaries)
        return summaries

    async def page(
        self, *, after_id: str | None, limit: int, include_private: bool
    ) -> list[Competition]:
        """One page of competitions ordered by id (not cached: listing is rare)."""
        try:
            return await list_competitions(
                self.pool, after_id=after_id, limit=limit, include_private=include_private
            )
        except POSTGRES_ERRORS as error:
            raise DependencyUnavailableError("the competition store is unavailable") from error
