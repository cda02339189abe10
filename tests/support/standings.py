"""Writing standings to Redis the way the ranker does, for tests that stand in for it.

The ranker bumps a competition's standings version in PostgreSQL in the batch's transaction
and the Redis write script moves the built marker from the old version to the new one
(issue #17); a test that writes Redis without the bump would leave a marker the reconciler
and the next batch take for a stale board.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from services.ranker.repository import bump_standings_versions
from shared.leaderboard_store import LeaderboardStore, StandingWrite, VersionStep, WindowResult
from shared.schemas.competition import SortOrder


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
