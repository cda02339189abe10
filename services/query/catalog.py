"""Competition metadata for the read API: cached briefly, with visibility enforced here.

Every leaderboard read starts with a competition lookup, so lookups go through the shared
:class:`~shared.competition_cache.CompetitionCache` (``PODIUM_COMPETITION_CACHE_TTL_S``:
unknown ids cached too, concurrent misses share a query, the last known row when PostgreSQL
does not answer). Window summaries are cached here the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from services.query.settings import QuerySettings
from shared.auth import Scope
from shared.competition_cache import MAX_ENTRIES, CompetitionCache
from shared.competitions import list_competitions
from shared.db import POSTGRES_FAILURES
from shared.errors import AuthenticationError, DependencyUnavailableError, NotFoundError
from shared.http.auth import optional_principal
from shared.read_replicas import ReadPool
from shared.schemas.competition import Competition, Visibility
from shared.single_flight import SingleFlight
from shared.ttl_cache import TTLCache


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


def may_read_private(connection: HTTPConnection, settings: QuerySettings) -> bool:
    """Whether the caller's token allows private competitions (a bad token is a 401)."""
    principal = optional_principal(connection, settings)
    return principal is not None and principal.has(Scope.LEADERBOARDS_READ)


class CompetitionCatalog:
    """Looks competitions up (cached) and decides who may read them."""

    def __init__(self, pool: ReadPool, settings: QuerySettings) -> None:
        self.pool = pool
        self.settings = settings
        ttl_s = settings.competition_cache_ttl_s
        self._competitions = CompetitionCache.from_pool(pool, ttl_s=ttl_s)
        self._windows: TTLCache[str, list[WindowSummary]] = TTLCache(
            ttl_s=ttl_s, max_entries=MAX_ENTRIES
        )
        self._window_flights: SingleFlight[list[WindowSummary]] = SingleFlight()

    def cached(self, competition_id: str) -> Competition | None:
        """The competition when it is cached and fresh (no I/O), else None."""
        return self._competitions.cached(competition_id)

    def forget(self, competition_id: str) -> None:
        """Drop what is cached of a competition (it was deleted: the next read asks
        PostgreSQL and answers 404)."""
        self._competitions.invalidate(competition_id)
        self._windows.discard(competition_id)

    async def get(self, competition_id: str) -> Competition | None:
        """The competition, or None when it does not exist."""
        return await self._competitions.get(competition_id)

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
        return await self._window_flights.run(
            competition_id, lambda: self._load_windows(competition_id)
        )

    async def _load_windows(self, competition_id: str) -> list[WindowSummary]:
        try:
            rows = await self.pool.fetch(
                "SELECT window_label, count(*) AS entrants FROM standings"
                " WHERE competition_id = $1 GROUP BY window_label ORDER BY window_label",
                competition_id,
            )
        except POSTGRES_FAILURES as error:
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
        except POSTGRES_FAILURES as error:
            raise DependencyUnavailableError("the competition store is unavailable") from error
