"""Writing a batch's absolute standings to the Redis leaderboards and describing the change."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from services.ranker.planner import BatchPlan
from shared.leaderboard import (
    competition_key_pattern,
    member_user_id,
    ranking_key,
    standing_value,
)
from shared.leaderboard_store import (
    CompetitionNotBuiltError,
    LeaderboardStore,
    StandingWrite,
    WindowResult,
)
from shared.schemas.change_message import LeaderboardEntry, UserChange, WindowChange
from shared.schemas.competition import Competition


@dataclass
class IndexedCompetition:
    """One competition's Redis write: the top before it, and its result (None: not built)."""

    competition: Competition
    users_by_window: dict[str, list[str]]
    top_before: dict[str, list[LeaderboardEntry]]
    results: dict[str, WindowResult] | None


async def redis_windows(redis: Redis, prefix: str, competition_id: str) -> set[str]:
    """The windows of a competition that have a ranking in Redis."""
    head = ranking_key(prefix, competition_id, "").removesuffix(":z")
    pattern = competition_key_pattern(prefix, competition_id).removesuffix("*") + "*:z"
    windows = set()
    async for key in redis.scan_iter(match=pattern, count=1000):
        text = key.decode() if isinstance(key, bytes) else key
        if ":rebuild:" not in text:
            windows.add(text[len(head) : -len(":z")])
    return windows


async def read_tops(
    store: LeaderboardStore, competition: Competition, windows: list[str], top_n: int
) -> dict[str, list[LeaderboardEntry]]:
    """The top ``top_n`` of each window, read in one round trip."""
    async with store.redis.pipeline(transaction=False) as pipe:
        for window in windows:
            pipe.zrange(
                ranking_key(store.prefix, competition.id, window), 0, top_n - 1, withscores=True
            )
        replies = await pipe.execute()
    return {
        window: [
            LeaderboardEntry(
                rank=position + 1,
                user_id=member_user_id(member),
                score=standing_value(float(score), competition.sort_order),
            )
            for position, (member, score) in enumerate(rows)
        ]
        for window, rows in zip(windows, replies, strict=True)
    }


async def write_competition(
    store: LeaderboardStore, competition: Competition, plan: BatchPlan, top_n: int
) -> IndexedCompetition:
    """Write the plan's final standings of one competition's touched users to Redis.

    Users touched by a control event are also removed from every window Redis holds, so a
    replayed removal clears windows PostgreSQL no longer lists for them.
    """
    cid = competition.id
    writes: dict[str, list[StandingWrite]] = defaultdict(list)
    for user, windows in plan.touched.get(cid, {}).items():
        for window in windows:
            standing = plan.final.get((cid, window, user))
            if standing is None:
                writes[window].append(StandingWrite(user, None, None))
            else:
                writes[window].append(StandingWrite(user, standing.score, standing.reached_at))
    controlled = plan.controlled.get(cid, set())
    if controlled:
        for window in await redis_windows(store.redis, store.prefix, cid):
            written = {write.user_id for write in writes[window]}
            writes[window] += [
                StandingWrite(user, None, None) for user in sorted(controlled - written)
            ]
    window_writes: dict[str, Sequence[StandingWrite]] = {
        window: items for window, items in writes.items() if items
    }
    users_by_window = {
        window: [write.user_id for write in items] for window, items in window_writes.items()
    }
    top_before = await read_tops(store, competition, list(window_writes), top_n)
    try:
        results: dict[str, WindowResult] | None = await store.write(
            cid, competition.sort_order, window_writes
        )
    except CompetitionNotBuiltError:
        results = None
    return IndexedCompetition(competition, users_by_window, top_before, results)


async def window_changes(
    store: LeaderboardStore, indexed: IndexedCompetition, plan: BatchPlan, top_n: int
) -> list[WindowChange]:
    """Describe each written window after the batch (ranks read back if it was rebuilt)."""
    competition = indexed.competition
    changes = []
    tops = await read_tops(store, competition, list(indexed.users_by_window), top_n)
    for window, users in sorted(indexed.users_by_window.items()):
        top = tops[window]
        if indexed.results is not None:
            result = indexed.results[window]
            total, ranks = result.total, result.ranks
        else:
            found = await store.ranks(competition.id, window, competition.sort_order, users)
            total = found.total
            ranks = {user: entry.rank for user, entry in found.found.items()}
        changed = []
        for user in users:
            standing = plan.final.get((competition.id, window, user))
            rank = ranks.get(user)
            changed.append(
                UserChange(
                    user_id=user,
                    score=standing.score if standing is not None else None,
                    rank=rank if standing is not None else None,
                )
            )
        changes.append(
            WindowChange(
                window=window,
                changed=changed,
                top_changed=indexed.results is None or top != indexed.top_before[window],
                top=top,
                total=total,
            )
        )
    return changes
