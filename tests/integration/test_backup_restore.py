"""`podium backup` → schema dropped → `podium restore` → `podium rebuild` gives back every
leaderboard exactly (issue #9, acceptance 2), against the real PostgreSQL and Redis."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from shared.competitions import create_competition
from shared.event_partitions import maintain_partitions
from shared.leaderboard_store import LeaderboardStore, StandingWrite
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import CompetitionCreate, Operator, ResetSchedule, SortOrder
from tests.support.servers import podium_command, process_environment
from tests.support.standings import write_as_ranker

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
COMPETITIONS = [
    CompetitionCreate(id="high-score", name="High score", sort_order=SortOrder.DESC),
    CompetitionCreate(
        id="fastest-lap", name="Fastest lap", sort_order=SortOrder.ASC, max_value=600.0
    ),
    CompetitionCreate(
        id="steps-week",
        name="Steps this week",
        operator=Operator.SUM,
        reset=ResetSchedule.WEEKLY,
        metadata={"unit": "steps"},
    ),
]
WINDOWS = {
    "high-score": ["alltime"],
    "fastest-lap": ["alltime"],
    "steps-week": ["alltime", "2026-W48"],
}
Snapshot = dict[tuple[str, str], list[LeaderboardEntry]]


def _podium(settings: PlatformSettings, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        podium_command(*arguments),
        env=process_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _seed(pool: asyncpg.Pool, store: LeaderboardStore) -> None:
    """Competitions, events and standings in PostgreSQL; leaderboards built in Redis, then
    moved on by a ranker-style write applied to both stores."""
    for competition in COMPETITIONS:
        await create_competition(pool, competition)
    standings = []
    events = []
    for competition in COMPETITIONS:
        for window in WINDOWS[competition.id]:
            for user in range(150):
                # Repeated scores with distinct reach times exercise the tie-break encoding.
                score = float((user * 37) % 50) + (0.25 if competition.id == "fastest-lap" else 0)
                reached = T0 + timedelta(seconds=user)
                standings.append((competition.id, window, f"u{user}", score, reached))
        for user in range(150):
            events.append((f"{competition.id}-e{user}", competition.id, f"u{user}", 1.0, T0))
    await pool.executemany(
        "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
        " last_event_ts) VALUES ($1, $2, $3, $4, $5, $5)",
        standings,
    )
    async with pool.acquire() as connection:  # weekly partitions (issue #18) around T0
        await maintain_partitions(connection, horizon=timedelta(days=30), now=T0, prune=False)
    events.append(("far-future", "high-score", "u0", 1.0, datetime(2100, 1, 1, tzinfo=UTC)))
    await pool.executemany(
        "INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts,"
        " received_at) VALUES ($1, $2, $3, $4, $5, $5)",
        events,
    )
    for competition in COMPETITIONS:
        await store.rebuild(pool, competition.id, competition.sort_order)
    moved_at = T0 + timedelta(hours=1)
    await pool.execute(
        "UPDATE standings SET score = 99.5, reached_at = $1 WHERE competition_id = 'high-score'"
        " AND user_id = 'u7'",
        moved_at,
    )
    await write_as_ranker(
        pool,
        store,
        "high-score",
        SortOrder.DESC,
        {"alltime": [StandingWrite("u7", 99.5, moved_at)]},
    )


async def _leaderboards(store: LeaderboardStore) -> Snapshot:
    snapshot: Snapshot = {}
    for competition in COMPETITIONS:
        for window in WINDOWS[competition.id]:
            size = await store.size(competition.id, window)
            entries = await store.top(competition.id, window, competition.sort_order, 0, size)
            ranks = await store.ranks(
                competition.id, window, competition.sort_order, [e.user_id for e in entries]
            )
            assert [ranks.found[e.user_id] for e in entries] == entries
            snapshot[(competition.id, window)] = entries
    return snapshot


async def _tables(pool: asyncpg.Pool) -> dict[str, list[Any]]:
    return {
        "competitions": [
            dict(row) for row in await pool.fetch("SELECT * FROM competitions ORDER BY id")
        ],
        "standings": [
            tuple(row)
            for row in await pool.fetch(
                "SELECT competition_id, window_label, user_id, score, reached_at, last_event_ts"
                " FROM standings ORDER BY 1, 2, 3"
            )
        ],
        "score_events": [  # with the partition each row is in
            tuple(row)
            for row in await pool.fetch(
                "SELECT tableoid::regclass::text, * FROM score_events ORDER BY event_id"
            )
        ],
        "watermark": [await pool.fetchval("SELECT pruned_before FROM score_events_pruned")],
    }


async def _lose_everything(
    settings: PlatformSettings, pool: asyncpg.Pool, store: LeaderboardStore
) -> None:
    await pool.execute(f'DROP SCHEMA "{settings.db_schema}" CASCADE')
    for competition in COMPETITIONS:
        await store.drop(competition.id)
    assert not await store.is_built("high-score")


async def test_backup_drop_restore_rebuild_gives_every_leaderboard_back(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis, tmp_path: Path
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await _seed(pool, store)
    leaderboards_before = await _leaderboards(store)
    tables_before = await _tables(pool)
    assert leaderboards_before[("high-score", "alltime")][0].user_id == "u7"
    assert leaderboards_before[("fastest-lap", "alltime")][0].score == 0.25

    archive = tmp_path / "podium.dump"
    backup = _podium(settings, "backup", "--output", str(archive))
    assert backup.returncode == 0, backup.stderr
    assert archive.stat().st_size > 0
    assert not archive.with_name("podium.dump.partial").exists()

    await _lose_everything(settings, pool, store)

    restore = _podium(settings, "restore", "--input", str(archive))
    assert restore.returncode == 0, restore.stderr
    rebuild = _podium(settings, "rebuild")
    assert rebuild.returncode == 0, rebuild.stderr
    assert "rebuilt 3 board(s)" in rebuild.stdout

    assert await _tables(pool) == tables_before
    assert await _leaderboards(store) == leaderboards_before


async def test_restore_refuses_an_existing_schema_unless_clean(
    settings: PlatformSettings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await create_competition(pool, COMPETITIONS[0])
    archive = tmp_path / "podium.dump"
    assert _podium(settings, "backup", "--output", str(archive)).returncode == 0
    await pool.execute("DELETE FROM competitions")

    refused = _podium(settings, "restore", "--input", str(archive))
    assert refused.returncode == 1
    assert f"schema '{settings.db_schema}' already exists; pass --clean" in refused.stderr
    assert await pool.fetchval("SELECT count(*) FROM competitions") == 0

    replaced = _podium(settings, "restore", "--input", str(archive), "--clean")
    assert replaced.returncode == 0, replaced.stderr
    assert await pool.fetchval("SELECT id FROM competitions") == "high-score"


async def test_restore_refuses_an_archive_of_another_schema(
    settings: PlatformSettings, settings_factory: Any, tmp_path: Path
) -> None:
    archive = tmp_path / "podium.dump"
    assert _podium(settings, "backup", "--output", str(archive)).returncode == 0
    other = settings_factory(db_schema=f"{settings.db_schema}_other")

    refused = _podium(other, "restore", "--input", str(archive))
    assert refused.returncode == 1
    assert f"not '{other.db_schema}' (PODIUM_DB_SCHEMA)" in refused.stderr
    missing = _podium(settings, "restore", "--input", str(tmp_path / "absent.dump"))
    assert missing.returncode == 2
    assert "--input" in missing.stderr
