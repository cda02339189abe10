"""Seeding leaderboards through the ranker's own write path, and the independent oracle.

Standings go into PostgreSQL first, then Redis is built from them with
``LeaderboardStore.rebuild`` (later changes: PostgreSQL upsert + ``LeaderboardStore.write``),
exactly what the ranker does. :func:`expected_order` sorts the seeded rows in Python, without
touching Redis, so tests compare the service against an independent computation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from shared.competitions import create_competition
from shared.leaderboard_store import LeaderboardStore, StandingWrite
from shared.schemas.competition import Competition, CompetitionCreate, RankStyle, SortOrder
from tests.support.standings import write_as_ranker

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Row:
    """One seeded standing."""

    window: str
    user_id: str
    score: float
    reached_at: datetime


async def seed_competition(pool: asyncpg.Pool, **fields: Any) -> Competition:
    """Insert a competition (``id`` and ``name`` default from each other)."""
    fields.setdefault("name", fields.get("id", "c"))
    return await create_competition(pool, CompetitionCreate(**fields))


def make_rows(window: str, count: int, *, prefix: str = "u", ties_every: int = 7) -> list[Row]:
    """``count`` standings with many equal scores and some equal reached times."""
    return [
        Row(
            window,
            f"{prefix}{index:04d}",
            float((index * 37) % ties_every),
            T0 + timedelta(seconds=(index * 13) % 5),
        )
        for index in range(count)
    ]


async def seed_standings(
    pool: asyncpg.Pool, store: LeaderboardStore, competition: Competition, rows: list[Row]
) -> None:
    """Insert ``rows`` into PostgreSQL and rebuild the competition's Redis keys from them."""
    await pool.executemany(
        "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
        " last_event_ts) VALUES ($1, $2, $3, $4, $5, $5)",
        [(competition.id, r.window, r.user_id, r.score, r.reached_at) for r in rows],
    )
    await store.rebuild(pool, competition.id, competition.sort_order)


async def set_standing(
    pool: asyncpg.Pool, store: LeaderboardStore, competition: Competition, row: Row
) -> None:
    """The ranker's incremental write: upsert PostgreSQL, then write Redis."""
    await pool.execute(
        "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
        " last_event_ts) VALUES ($1, $2, $3, $4, $5, $5)"
        " ON CONFLICT (competition_id, window_label, user_id)"
        " DO UPDATE SET score = $4, reached_at = $5, last_event_ts = $5",
        competition.id,
        row.window,
        row.user_id,
        row.score,
        row.reached_at,
    )
    await write_as_ranker(
        pool,
        store,
        competition.id,
        competition.sort_order,
        {row.window: [StandingWrite(row.user_id, row.score, row.reached_at)]},
    )


def expected_order(
    rows: list[Row],
    window: str,
    sort_order: SortOrder,
    rank_style: RankStyle = RankStyle.UNIQUE,
    *,
    percentiles: bool = False,
) -> list[dict[str, Any]]:
    """The window's ranking computed in Python: better score first, then earlier, then id.

    Ranks in ``rank_style``, counted from the definitions (not from the positions the way the
    service does): unique = position; standard = 1 + the users with a strictly better score;
    dense = 1 + the distinct scores strictly better. With ``percentiles``, each entry also
    has ``100 * (total - users strictly better) / total``.
    """
    sign = -1.0 if sort_order is SortOrder.DESC else 1.0
    ranked = sorted(
        (r for r in rows if r.window == window),
        key=lambda r: (sign * r.score, r.reached_at, r.user_id),
    )
    total = len(ranked)
    keys = [sign * r.score for r in ranked]
    distinct = sorted(set(keys))
    entries: list[dict[str, Any]] = []
    for index, r in enumerate(ranked):
        better = sum(1 for key in keys if key < sign * r.score)
        if rank_style is RankStyle.STANDARD:
            rank = better + 1
        elif rank_style is RankStyle.DENSE:
            rank = sum(1 for key in distinct if key < sign * r.score) + 1
        else:
            rank = index + 1
        entry: dict[str, Any] = {"rank": rank, "user_id": r.user_id, "score": r.score}
        if percentiles:
            entry["percentile"] = 100.0 * (total - better) / total
        entries.append(entry)
    return entries
