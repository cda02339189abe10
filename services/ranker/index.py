"""Writing a batch's absolute standings to the Redis leaderboards and describing the change.

Change-message versions come from a per-competition counter in Redis
(:func:`~shared.redis_keys.version_key`) that must keep increasing even when Redis loses it
or comes back from an older snapshot: the notifier drops versions it has already seen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from services.ranker.planner import BatchPlan
from shared.leaderboard import member_user_id, standing_value
from shared.leaderboard_store import (
    CHANGE_VERSION_LUA,
    LeaderboardStore,
    Staleness,
    StandingWrite,
    VersionStep,
    WindowResult,
)
from shared.redis_client import execute_scripted
from shared.redis_keys import competition_windows, ranking_key
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition

# KEYS: the change-message version counter. ARGV: now in milliseconds. The next version
# alone (the reconciler's rebuilt announcements; a batch's writes take theirs in the write
# script): shared.leaderboard_store.CHANGE_VERSION_LUA says how it keeps increasing.
NEXT_VERSION_SCRIPT = CHANGE_VERSION_LUA + "return next_change_version(KEYS[1], ARGV[1])\n"


@dataclass
class IndexedCompetition:
    """One competition's Redis write: its written users, result and change-message version.

    ``results`` is None when the write was refused (``stale`` says why: the marker was
    missing, behind or ahead of PostgreSQL's version; nothing was written; the caller
    rebuilds the competition and reads ranks and the top back with :func:`read_back`).
    """

    competition: Competition
    users_by_window: dict[str, list[str]]
    results: dict[str, WindowResult] | None
    version: int
    stale: Staleness | None = None


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """What a batch writes to one competition's leaderboards, per window."""

    competition: Competition
    writes: dict[str, list[StandingWrite]]


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


async def planned_writes(
    store: LeaderboardStore, competitions: Sequence[Competition], plan: BatchPlan
) -> list[PlannedWrite]:
    """The Redis writes of every touched competition of the plan; those without any are left
    out (they neither get a change message nor a new standings version)."""
    controlled_windows = {
        competition.id: await competition_windows(store.redis, store.prefix, competition.id)
        for competition in competitions
        if plan.controlled.get(competition.id)
    }
    planned = []
    for competition in competitions:
        writes = competition_writes(
            plan, competition.id, controlled_windows.get(competition.id, ())
        )
        if writes:
            planned.append(PlannedWrite(competition, writes))
    return planned


async def write_batch(
    store: LeaderboardStore,
    planned: Sequence[PlannedWrite],
    new_versions: dict[str, int],
    top_n: int,
    now_ms: int,
) -> list[IndexedCompetition]:
    """Write the planned competitions to Redis in one pipelined round trip.

    Per competition the pipeline runs the atomic write script once: it refuses to write
    unless the built marker holds the standings version before the batch (``new_versions[cid]
    - 1``) and then sets it to the new one, reports each window's top after the write and
    whether it changed, and takes the next change-message version (written or refused: a
    refused competition's rebuild is announced with it). One script call per competition, not
    two: each call costs the ranker its packing and parsing and Redis a script run.
    """
    async with store.redis.pipeline(transaction=False) as pipe:
        for item in planned:
            new = new_versions[item.competition.id]
            store.queue_write(
                pipe,
                item.competition.id,
                item.competition.sort_order,
                dict(item.writes),
                top_n,
                VersionStep(new - 1, new),
                change_version_at_ms=now_ms,
            )
        replies = await execute_scripted(store.redis, pipe, store.write_scripts) if planned else []
    indexed = []
    for item, reply in zip(planned, replies, strict=True):
        competition, writes = item.competition, item.writes
        write_reply, version = store.split_versioned_reply(reply)
        outcome = store.parse_write_reply(
            dict(writes),
            competition.sort_order,
            write_reply,
            new_versions[competition.id] - 1,
        )
        indexed.append(
            IndexedCompetition(
                competition,
                {window: [write.user_id for write in items] for window, items in writes.items()},
                None if isinstance(outcome, Staleness) else outcome,
                version,
                outcome if isinstance(outcome, Staleness) else None,
            )
        )
    return indexed


def change_message(indexed: IndexedCompetition, plan: BatchPlan, emitted_at: datetime) -> bytes:
    """The change message of a written (or rebuilt and read back) competition, encoded.

    The JSON matches :class:`shared.schemas.change_message.ChangeMessage`; it is built from
    plain dicts because this runs once per touched competition per batch. A competition
    that was rebuilt (``stale``) is announced as ``rebuilt``: ranks of users the message does
    not list may have changed too.
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
            "rebuilt": indexed.stale is not None,
        }
    )


async def read_back(
    store: LeaderboardStore, indexed: IndexedCompetition, top_n: int
) -> IndexedCompetition:
    """``indexed`` after its competition was rebuilt: ranks, totals and tops read from Redis.

    Every window then reports its top as changed. ``indexed.users_by_window`` may list no
    users for a window (the reconciler's rebuilt announcement: totals and tops only).
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
    return IndexedCompetition(
        competition, indexed.users_by_window, results, indexed.version, indexed.stale
    )
