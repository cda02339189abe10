"""Writing standings to Redis the way the ranker does, for tests that stand in for it.

The ranker bumps a competition's standings version in PostgreSQL in the batch's transaction
and the Redis write script moves the built marker from the old version to the new one
(issue #17); a test that writes Redis without the bump would leave a marker the reconciler
and the next batch take for a stale board.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import asyncpg

from shared.leaderboard_store import LeaderboardStore, StandingWrite, VersionStep, WindowResult
from shared.schemas.competition import SortOrder

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy


async def write_as_ranker(
    pool: asyncpg.Pool,
    store: LeaderboardStore,
    competition_id: str,
    sort_order: SortOrder,
    writes: dict[str, Sequence[StandingWrite]],
) -> dict[str, WindowResult]:
    """Bump the competition's standings version and write ``writes`` to Redis at it.

    The caller keeps PostgreSQL's standings in line itself (or tests Redis alone).
    """
    async with pool.acquire() as connection, connection.transaction():
        new = (await bump_standings_versions(connection, [competition_id]))[competition_id]
        return await store.write(competition_id, sort_order, writes, VersionStep(new - 1, new))


async def bump_standings_versions(
    connection: asyncpg.Connection | PoolConnectionProxy[asyncpg.Record],
    competition_ids: Iterable[str],
) -> dict[str, int]:
    """Add one to these competitions' standings versions; returns each one's new version
    (a missing row starts at 1), as a ranker batch's writes leave them (the batch reads the
    version with its state and writes it as stored + 1 under the competition lock: the same
    result). One statement, inside the caller's transaction."""
    ids = sorted(set(competition_ids))
    if not ids:
        return {}
    rows = await connection.fetch(
        "INSERT INTO standings_versions AS v (competition_id, version)"
        " SELECT cid, 1 FROM unnest($1::text[]) AS cid"
        " ON CONFLICT (competition_id) DO UPDATE SET version = v.version + 1"
        " RETURNING competition_id, version",
        ids,
    )
    return {row["competition_id"]: row["version"] for row in rows}
