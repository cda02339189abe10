"""Tournament rules ingest can check before publishing: joined, and attempts left.

Both read PostgreSQL, only for events of competitions that have the rule. Entrants found are
remembered for ``ttl_s`` (a join on this replica is remembered at once), so a player's
scores cost one lookup per TTL; a removal on another replica can therefore let a score
through for up to ``ttl_s``, which the ranker then dead-letters ``not_joined`` (it decides
from the table in the batch's transaction). Attempts are read each time and only what is
already applied counts: ingest refuses what it knows cannot apply, the ranker decides the
rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.ingest.admission import Rejection
from shared import entrants
from shared.schemas.competition import Competition
from shared.schemas.score_event import ScoreEventIn
from shared.ttl_cache import TTLCache

NOT_JOINED = "not_joined"
ATTEMPTS_EXHAUSTED = "attempts_exhausted"
_CACHED_ENTRANTS = 100_000


def applies_to(competition: Competition) -> bool:
    """Whether events of ``competition`` need the gate."""
    return competition.join_required or competition.max_attempts is not None


class TournamentGate:
    """Refusals for ``not_joined`` and ``attempts_exhausted``, read from PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float) -> None:
        self._pool = pool
        self._entrants: TTLCache[tuple[str, str], bool] = TTLCache(
            ttl_s=ttl_s, max_entries=_CACHED_ENTRANTS
        )

    def joined(self, competition_id: str, user_id: str) -> None:
        """A join on this replica: its scores pass at once."""
        self._entrants.put((competition_id, user_id), True)

    def removed(self, competition_id: str, user_id: str) -> None:
        """A removal on this replica: its scores are refused at once."""
        self._entrants.discard((competition_id, user_id))

    async def refusals(
        self, events: Sequence[tuple[ScoreEventIn, Competition]], received_at: datetime
    ) -> list[Rejection | None]:
        """Per event (in order), why it is refused, or None (raises on database errors)."""
        joining = {
            (competition.id, event.user_id)
            for event, competition in events
            if competition.join_required
            and self._entrants.get((competition.id, event.user_id)) is None
        }
        if joining:
            for pair in await entrants.entrants_among(self._pool, joining):
                self._entrants.put(pair, True)
        keys = [
            (
                competition.id,
                entrants.attempt_window(competition, event.ts or received_at),
                event.user_id,
            )
            if competition.max_attempts is not None
            else None
            for event, competition in events
        ]
        used = await entrants.attempts_used(self._pool, [key for key in keys if key])
        refused: list[Rejection | None] = []
        for (event, competition), key in zip(events, keys, strict=True):
            if competition.join_required and (
                self._entrants.get((competition.id, event.user_id)) is None
            ):
                refused.append(
                    Rejection(
                        NOT_JOINED,
                        "user_id",
                        f"{event.user_id!r} has not joined competition {competition.id!r}"
                        " (POST /api/v1/competitions/{id}/entrants)",
                    )
                )
            elif key is not None and used.get(key, 0) >= (competition.max_attempts or 0):
                refused.append(
                    Rejection(
                        ATTEMPTS_EXHAUSTED,
                        "user_id",
                        f"{event.user_id!r} used all {competition.max_attempts} attempt(s) of"
                        f" window {key[1]!r}",
                    )
                )
            else:
                refused.append(None)
        return refused
