"""``podium rebuild``: rebuild Redis leaderboards from PostgreSQL standings by hand.

Each competition is rebuilt under its advisory lock, as the ranker heals one, so a batch in
flight is never half overwritten.
"""

from __future__ import annotations

from services.ranker.heal import heal_competition
from services.ranker.settings import RankerSettings
from shared.competitions import get_competition
from shared.errors import NotFoundError
from shared.leaderboard_store import LeaderboardStore
from shared.resources import open_resources
from shared.schemas.competition import SortOrder


async def rebuild_leaderboards(
    settings: RankerSettings, competition_id: str | None
) -> dict[str, int]:
    """Rebuild one competition (or all) atomically; returns standings loaded per competition."""
    async with open_resources(settings, postgres=True, redis=True) as resources:
        pool = resources.require_pool()
        store = LeaderboardStore(resources.require_redis(), settings.redis_key_prefix)
        if competition_id is not None:
            competition = await get_competition(pool, competition_id)
            if competition is None:
                raise NotFoundError(
                    f"competition {competition_id!r} does not exist",
                    details={"field": "competition"},
                )
            targets = [(competition.id, competition.sort_order)]
        else:
            rows = await pool.fetch("SELECT id, sort_order FROM competitions ORDER BY id")
            targets = [(row["id"], SortOrder(row["sort_order"])) for row in rows]
        async with pool.acquire() as connection:
            return {
                cid: (await heal_competition(connection, store, cid, order, force=True)).standings
                for cid, order in targets
            }
