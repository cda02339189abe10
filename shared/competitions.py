"""The competitions table: reading and writing :class:`Competition` rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from shared.errors import ConflictError
from shared.read_replicas import ReadPool
from shared.schemas.competition import Competition, CompetitionCreate, CompetitionUpdate
from shared.teams import team_board_id

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

_COLUMNS = (
    "id, name, sort_order, operator, reset, timezone, starts_at, ends_at, max_value,"
    " visibility, rank_style, metadata, join_required, max_entrants, max_attempts, teams,"
    " created_at, updated_at"
)


def _from_row(row: asyncpg.Record) -> Competition:
    return Competition.model_validate(dict(row))


def competition_rows_sql(ids_parameter: int) -> str:
    """A SQL expression for one statement that reads more: the competitions whose ids are in
    the ``text[]`` parameter ``$ids_parameter``, as one JSON array (give it to
    :func:`competitions_from_rows`). It spares a caller that reads other things too the round
    trip of :func:`get_competitions`. Each row carries its version (``xmin``, the transaction
    that wrote it), so a row read again unchanged is not validated again."""
    return (
        "(SELECT coalesce(json_agg(c), '[]') FROM"  # noqa: S608 - constant columns
        f" (SELECT xmin::text AS row_version, {_COLUMNS} FROM competitions"
        f" WHERE id = ANY(${ids_parameter}::text[])) c)"
    )


_ROWS_PARSED_MAX = 4096
"""Bound of the parsed-row memo (a full memo is cleared: the competitions of the next batches
are parsed again)."""
_rows_parsed: dict[tuple[str, str, str], Competition] = {}


def competitions_from_rows(rows: list[dict[str, Any]]) -> dict[str, Competition]:
    """The competitions of a :func:`competition_rows_sql` array (JSON objects), by id.

    JSON rather than an array of rows: asyncpg decodes a row's ``jsonb`` fields in binary,
    which the connections' JSON codec (text) cannot read. A row version seen before gives the
    same (frozen) model: every UPDATE writes a new row version with its own transaction's
    ``xmin`` and a new ``updated_at``, so (id, xmin, updated_at) names one content. The ranker
    reads its batch's competitions every batch; under load batches are small and the pydantic
    validation of the same rows was 3-4% of its samples. The models are shared between
    batches: their ``metadata`` and ``teams`` must be read, never changed."""
    competitions = {}
    for row in rows:
        key = (row["id"], row["row_version"], row["updated_at"])  # the model ignores row_version
        competition = _rows_parsed.get(key)
        if competition is None:
            if len(_rows_parsed) >= _ROWS_PARSED_MAX:
                _rows_parsed.clear()
            competition = _rows_parsed[key] = Competition.model_validate(row)
        competitions[key[0]] = competition
    return competitions


async def get_competition(
    connection: asyncpg.Pool | asyncpg.Connection | ReadPool, competition_id: str
) -> Competition | None:
    """The competition with ``competition_id``, or None."""
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM competitions WHERE id = $1",  # noqa: S608 - constant columns
        competition_id,
    )
    return _from_row(row) if row is not None else None


async def get_competitions(
    connection: asyncpg.Pool | asyncpg.Connection | ReadPool, competition_ids: list[str]
) -> dict[str, Competition]:
    """The competitions among ``competition_ids`` that exist, by id."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM competitions WHERE id = ANY($1::text[])",  # noqa: S608
        competition_ids,
    )
    return {row["id"]: _from_row(row) for row in rows}


async def all_competitions(
    connection: asyncpg.Pool | asyncpg.Connection | ReadPool,
) -> list[Competition]:
    """Every competition, ordered by id."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM competitions ORDER BY id"  # noqa: S608 - constant columns
    )
    return [_from_row(row) for row in rows]


async def list_competitions(
    connection: asyncpg.Pool | asyncpg.Connection | ReadPool,
    *,
    after_id: str | None,
    limit: int,
    include_private: bool,
) -> list[Competition]:
    """Competitions ordered by id, starting after ``after_id`` (keyset pagination)."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM competitions"  # noqa: S608
        " WHERE ($1::text IS NULL OR id > $1) AND ($2 OR visibility = 'public')"
        " ORDER BY id LIMIT $3",
        after_id,
        include_private,
        limit,
    )
    return [_from_row(row) for row in rows]


async def create_competition(
    connection: asyncpg.Pool | asyncpg.Connection, competition: CompetitionCreate
) -> Competition:
    """Insert ``competition``; 409 when the id is taken."""
    try:
        row = await connection.fetchrow(
            "INSERT INTO competitions (id, name, sort_order, operator, reset, timezone,"  # noqa: S608
            " starts_at, ends_at, max_value, visibility, metadata, rank_style, join_required,"
            " max_entrants, max_attempts, teams) VALUES"
            f" ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            f" RETURNING {_COLUMNS}",
            competition.id,
            competition.name,
            competition.sort_order.value,
            competition.operator.value,
            competition.reset.value,
            competition.timezone,
            competition.starts_at,
            competition.ends_at,
            competition.max_value,
            competition.visibility.value,
            competition.metadata,
            competition.rank_style.value,
            competition.join_required,
            competition.max_entrants,
            competition.max_attempts,
            competition.teams.model_dump(mode="json") if competition.teams else None,
        )
    except asyncpg.UniqueViolationError as error:
        raise ConflictError(
            f"competition {competition.id!r} already exists", details={"field": "id"}
        ) from error
    assert row is not None
    return _from_row(row)


async def update_competition(
    connection: asyncpg.Pool | asyncpg.Connection, competition_id: str, update: CompetitionUpdate
) -> Competition | None:
    """Apply the fields set in ``update``; None when the competition does not exist."""
    changes: dict[str, Any] = {
        name: (value.value if hasattr(value, "value") else value)
        for name, value in update.model_dump(exclude_unset=True).items()
    }
    if not changes:
        return await get_competition(connection, competition_id)
    assignments = ", ".join(f"{name} = ${index}" for index, name in enumerate(changes, start=2))
    row = await connection.fetchrow(
        f"UPDATE competitions SET {assignments}, updated_at = now()"  # noqa: S608 - names are model fields
        f" WHERE id = $1 RETURNING {_COLUMNS}",
        competition_id,
        *changes.values(),
    )
    return _from_row(row) if row is not None else None


COMPETITION_LOCK_SQL = "SELECT pg_advisory_lock(hashtextextended($1::text, 0))"
"""The session-level form of the competition lock the ranker takes per batch
(``services.ranker.repository.lock_competitions``: ``pg_advisory_xact_lock`` on the same key,
``hashtextextended(cid, 0)``). Session and transaction advisory locks on one key exclude each
other, so a holder of this lock has no ranker batch, heal or rebuild of the competition
between its PostgreSQL reads and its commit."""
COMPETITION_UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtextextended($1::text, 0))"

_DELETED_TABLES = (
    "standings",
    "standings_versions",
    "banned_users",
    "entrants",
    "attempts",
    "team_members",
)
"""What a deletion removes besides the competition row. ``score_events`` and
``control_events`` stay (the audit trail, and exact dedup by event id: a replayed record of
a deleted competition is still a duplicate, so it never lands in a competition created later
under the same id); the dedup horizon drops their old rows like everyone else's."""


async def delete_competition(
    connection: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record], competition_id: str
) -> bool:
    """Delete a competition with its standings, versions and bans (inside the caller's
    transaction, which holds the competition lock: :data:`COMPETITION_LOCK_SQL`, so no
    ranker batch is in flight). False when there was no such competition (nothing changed).
    """
    deleted = await connection.fetchval(
        "DELETE FROM competitions WHERE id = $1 RETURNING id", competition_id
    )
    if deleted is None:
        return False
    boards = [competition_id, team_board_id(competition_id)]  # rows of its team board too
    for table in _DELETED_TABLES:
        await connection.execute(
            f"DELETE FROM {table} WHERE competition_id = ANY($1::text[])",  # noqa: S608
            boards,
        )
    return True
