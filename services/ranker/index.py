"""Writing a batch's absolute standings to the Redis leaderboards and describing the change."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from redis.commands.core import AsyncScript

from services.ranker.planner import BatchPlan
from shared.leaderboard import member_user_id, standing_value
from shared.leaderboard_store import (
    LeaderboardStore,
    StandingWrite,
    WindowResult,
    queue_script,
)
from shared.redis_keys import competition_windows, ranking_key, version_key
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition


@dataclass
class IndexedCompetition:
    """One competition's Redis write: its written users, result and change-message version.

    ``results`` is None when the competition was not built (nothing was written; the caller
    rebuilds it and reads ranks and the top back with :func:`read_back`).
    """

    competition: Competition
    users_by_window: dict[str, list[str]]
    results: dict[str, WindowResult] | None
    version: int


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


def competition_writes(
    plan: BatchPlan, competition_id: str, redis_windows_of_controlled: Iterable[str]
) -> dict[str, list[StandingWrite]]:
    """The plan's final standings of one competition's touched users, per window.

    Users touched by a control event are also removed from every window Redis holds
    (``redis_windows_of_controlled``), so a replayed removal clears windows PostgreSQL no
    longer lists for them.
    """
    writes: dict[str, list[StandingWrite]] = defaultdict(list)
    final = plan.final
    for user, windows in plan.touched.get(competition_id, {}).items():
        for window in windows:
            standing = final.get((competition_id, window, user))
            if standing is None:
                writes[window].append(StandingWrite(user, None, None))
            else:
                writes[window].append(StandingWrite(user, standing.score, standing.reached_at))
    controlled = plan.controlled.get(competition_id, set())
    for window in redis_windows_of_controlled:
        written = {write.user_id for write in writes[window]}
        writes[window] += [StandingWrite(user, None, None) for user in sorted(controlled - written)]
    return {window: items for window, items in writes.items() if items}


async def write_batch(
    store: LeaderboardStore,
    competitions: Sequence[Competition],
    plan: BatchPlan,
    top_n: int,
    next_version: AsyncScript,
    now_ms: int,
) -> list[IndexedCompetition]:
    """Write every touched competition of the plan to Redis in one pipelined round trip.

    Per competition the pipeline runs the atomic write script (which refuses to write when
    the built marker is missing, and reports each window's top after the write and whether
    it changed) and takes the next change-message version. Competitions without writes are
    left out.
    """
    controlled_windows = {
        competition.id: await competition_windows(store.redis, store.prefix, competition.id)
        for competition in competitions
        if plan.controlled.get(competition.id)
    }
    prefix = store.prefix
    planned: list[tuple[Competition, dict[str, list[StandingWrite]]]] = []
    async with store.redis.pipeline(transaction=False) as pipe:
        for competition in competitions:
            cid = competition.id
            writes = competition_writes(plan, cid, controlled_windows.get(cid, ()))
            if not writes:
                continue
            planned.append((competition, writes))
            store.queue_write(pipe, cid, competition.sort_order, dict(writes), top_n)
            queue_script(pipe, next_version, [version_key(prefix, cid)], [now_ms])
        replies = await pipe.execute() if planned else []
    return [
        IndexedCompetition(
            competition,
            {window: [write.user_id for write in items] for window, items in writes.items()},
            store.parse_write_reply(dict(writes), competition.sort_order, replies[2 * index]),
            int(replies[2 * index + 1]),
        )
        for index, (competition, writes) in enumerate(planned)
    ]


def change_message(indexed: IndexedCompetition, plan: BatchPlan, emitted_at: datetime) -> bytes:
    """The change message of a written (built) competition, encoded (no read needed).

    The JSON matches :class:`shared.schemas.change_message.ChangeMessage`; it is built from
    plain dicts because this runs once per touched competition per batch.
    """
    assert indexed.results is not None
    cid = indexed.competition.id
    final = plan.final
    windows = []
    for window, users in sorted(indexed.users_by_window.items()):
        result = indexed.results[window]
        ranks = result.ranks
        changed: list[dict[str, object]] = []
        for user in users:
            standing = final.get((cid, window, user))
            if standing is None:
                changed.append({"user_id": user, "score": None, "rank": None})
            else:
                changed.append({"user_id": user, "score": standing.score, "rank": ranks.get(user)})
        windows.append(
            {
                "window": window,
                "changed": changed,
                "top_changed": result.top_changed,
                "top": [
                    {"rank": rank, "user_id": user, "score": score}
                    for rank, (user, score) in enumerate(result.top, start=1)
                ],
                "total": result.total,
            }
        )
    return orjson.dumps(
        {
            "v": 1,
            "competition_id": cid,
            "version": indexed.version,
            "emitted_at": emitted_at,
            "windows": windows,
        }
    )


async def read_back(
    store: LeaderboardStore, indexed: IndexedCompetition, top_n: int
) -> IndexedCompetition:
    """``indexed`` after its competition was rebuilt: ranks, totals and tops read from Redis.

    Every window then reports its top as changed.
    """
    competition = indexed.competition
    tops = await read_tops(store, competition, list(indexed.users_by_window), top_n)
    results = {}
    for window, users in indexed.users_by_window.items():
        found = await store.ranks(competition.id, window, competition.sort_order, users)
        results[window] = WindowResult(
            total=found.total,
            ranks={user: entry.rank for user, entry in found.found.items()},
            top=[(entry.user_id, entry.score) for entry in tops[window]],
            top_changed=True,
        )
    return IndexedCompetition(competition, indexed.users_by_window, results, indexed.version)
