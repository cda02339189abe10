"""Tournament entrants and attempts in PostgreSQL (the ``entrants`` and ``attempts`` tables).

Joins are decided under the competition row's lock (``SELECT ... FOR UPDATE``): two joins
of one competition, on any number of ingest replicas, serialise there, so the entrant count
read under it is exact and ``max_entrants`` is never exceeded. The ranker's batches take
advisory locks, not this row lock, so a join never waits for a batch.

Attempts are counted by the ranker (``services.ranker.repository``); this module only reads
them, for the early refusal in ingest and a user's read in the query API.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import asyncpg

from shared.errors import CompetitionClosedError, CompetitionFullError, NotFoundError
from shared.read_replicas import ReadPool
from shared.schemas.competition import Competition, ResetSchedule
from shared.schemas.entrant import Entrant
from shared.windows import ALLTIME, period_label


def attempt_window(competition: Competition, moment: datetime) -> str:
    """The window attempts are counted in for an event at ``moment``: its period, or
    ``alltime`` for a competition without a reset (one limit for the whole competition)."""
    if competition.reset is ResetSchedule.NONE:
        return ALLTIME
    label = period_label(competition.reset, moment, competition.timezone)
    assert label is not None
    return label


def read_attempt_window(competition: Competition, window: str, now: datetime) -> str:
    """The attempt window a read of ``window`` shows: that window when it is one (a period,
    or ``alltime`` without a reset), the current period when reading ``alltime`` of a
    competition with a reset."""
    if window == ALLTIME and competition.reset is not ResetSchedule.NONE:
        return attempt_window(competition, now)
    return window


async def attempts_left(
    pool: asyncpg.Pool | ReadPool,
    competition: Competition,
    window: str,
    user_id: str,
    now: datetime,
) -> dict[str, object] | None:
    """``{"window", "used", "max"}`` of a user in a ``max_attempts`` competition, read for
    ``window`` (None without ``max_attempts``)."""
    if competition.max_attempts is None:
        return None
    attempt_window_read = read_attempt_window(competition, window, now)
    key = (competition.id, attempt_window_read, user_id)
    used = await attempts_used(pool, [key])
    return {
        "window": attempt_window_read,
        "used": used.get(key, 0),
        "max": competition.max_attempts,
    }


async def join(
    pool: asyncpg.Pool, competition_id: str, user_id: str, now: datetime
) -> tuple[Entrant, bool]:
    """Make ``user_id`` an entrant; returns the entrant and whether it is new.

    Already an entrant: the stored row, not new (a retried join is harmless, even after the
    end). Raises 404 for an unknown competition, 409 ``competition_closed`` at or after
    ``ends_at`` and 409 ``competition_full`` at ``max_entrants``.
    """
    async with pool.acquire() as connection, connection.transaction():
        competition = await connection.fetchrow(
            "SELECT ends_at, max_entrants FROM competitions WHERE id = $1 FOR UPDATE",
            competition_id,
        )
        if competition is None:
            raise NotFoundError(f"competition {competition_id!r} does not exist")
        joined_at = await connection.fetchval(
            "SELECT joined_at FROM entrants WHERE competition_id = $1 AND user_id = $2",
            competition_id,
            user_id,
        )
        if joined_at is not None:
            return Entrant(
                competition_id=competition_id, user_id=user_id, joined_at=joined_at
            ), False
        ends_at = competition["ends_at"]
        if ends_at is not None and now >= ends_at:
            raise CompetitionClosedError(
                f"competition {competition_id!r} ended at {ends_at.isoformat()}",
                details={"field": "competition_id", "ends_at": ends_at.isoformat()},
            )
        capacity = competition["max_entrants"]
        if capacity is not None:
            count = await connection.fetchval(
                "SELECT count(*) FROM entrants WHERE competition_id = $1", competition_id
            )
            if count >= capacity:
                raise CompetitionFullError(
                    f"competition {competition_id!r} has its {capacity} entrant(s)",
                    details={"field": "competition_id", "max_entrants": capacity},
                )
        await connection.execute(
            "INSERT INTO entrants (competition_id, user_id, joined_at) VALUES ($1, $2, $3)",
            competition_id,
            user_id,
            now,
        )
        return Entrant(competition_id=competition_id, user_id=user_id, joined_at=now), True


async def is_entrant(pool: asyncpg.Pool, competition_id: str, user_id: str) -> bool:
    """Whether ``user_id`` joined the competition."""
    found = await pool.fetchval(
        "SELECT true FROM entrants WHERE competition_id = $1 AND user_id = $2",
        competition_id,
        user_id,
    )
    return bool(found)


async def remove(pool: asyncpg.Pool, competition_id: str, user_id: str) -> bool:
    """Remove an entrant (its place is free at once); False when it was none."""
    removed = await pool.fetchval(
        "DELETE FROM entrants WHERE competition_id = $1 AND user_id = $2 RETURNING user_id",
        competition_id,
        user_id,
    )
    return removed is not None


async def page(
    pool: asyncpg.Pool | ReadPool, competition_id: str, after: str | None, limit: int
) -> tuple[list[Entrant], int]:
    """Up to ``limit`` entrants after user id ``after``, ordered by user id, and the total."""
    rows = await pool.fetch(
        "SELECT user_id, joined_at FROM entrants WHERE competition_id = $1"
        " AND ($2::text IS NULL OR user_id > $2) ORDER BY user_id LIMIT $3",
        competition_id,
        after,
        limit,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM entrants WHERE competition_id = $1", competition_id
    )
    entrants = [
        Entrant(competition_id=competition_id, user_id=row["user_id"], joined_at=row["joined_at"])
        for row in rows
    ]
    return entrants, total


async def entrants_among(
    pool: asyncpg.Pool | asyncpg.Connection | ReadPool, pairs: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (competition, user) pairs are entrants (no query for none)."""
    wanted = sorted(set(pairs))
    if not wanted:
        return set()
    rows = await pool.fetch(
        "SELECT e.competition_id, e.user_id FROM entrants e"
        " JOIN unnest($1::text[], $2::text[]) AS p(cid, uid)"
        " ON e.competition_id = p.cid AND e.user_id = p.uid",
        [cid for cid, _ in wanted],
        [user for _, user in wanted],
    )
    return {(row["competition_id"], row["user_id"]) for row in rows}


async def attempts_used(
    pool: asyncpg.Pool | ReadPool, keys: Iterable[tuple[str, str, str]]
) -> dict[tuple[str, str, str], int]:
    """Applied attempts per (competition, window, user) among ``keys`` (absent: none)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = await pool.fetch(
        "SELECT a.competition_id, a.window_label, a.user_id, a.attempts FROM attempts a"
        " JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(cid, w, uid)"
        " ON a.competition_id = k.cid AND a.window_label = k.w AND a.user_id = k.uid",
        [cid for cid, _, _ in wanted],
        [window for _, window, _ in wanted],
        [user for _, _, user in wanted],
    )
    return {
        (row["competition_id"], row["window_label"], row["user_id"]): row["attempts"]
        for row in rows
    }
