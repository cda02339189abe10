"""``podium rebuild``: rebuild Redis leaderboards from PostgreSQL standings by hand.

Each competition is rebuilt under its advisory lock, as the ranker heals one, so a batch in
flight is never half overwritten.
"""

from __future__ import annotations

from services.ranker.heal import heal_competition
from services.ranker.settings import RankerSettings
from shared.competitions import all_competitions, get_competition
from shared.errors import NotFoundError
from shared.leaderboard_store import LeaderboardStore
from shared.resources import open_resources
from shared.teams import team_board_id


async def rebuild_leaderboards(
    settings: RankerSettings, competition_id: str | None
) -> dict[str, int]:
    """Rebuild one competition (or all) atomically, with its team board; returns standings
    loaded per board (a team board is named ``<competition id>~teams``)."""
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
            competitions = [competition]
        else:
            competitions = await all_competitions(pool)
        targets = [(competition.id, competition.sort_order) for competition in competitions]
        targets += [
            (team_board_id(competition.id), competition.sort_order)
            for competition in competitions
            if competition.teams is not None
        ]
        async with pool.acquire() as connection:
            return {
                cid: (await heal_competition(connection, store, cid, order, force=True)).standings
                for cid, order in targets
            }
