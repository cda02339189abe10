"""The Redis leaderboard store against the real Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from shared.leaderboard_store import (
    CompetitionNotBuiltError,
    LeaderboardStore,
    Staleness,
    StandingWrite,
    VersionStep,
    read_standings_version,
    staleness,
)
from shared.redis_client import create_redis
from shared.redis_keys import WINDOWS_COMPLETE, built_key, competition_windows, windows_key
from shared.schemas.competition import SortOrder
from tests.conftest import SettingsFactory
from tests.support.private_redis import private_redis
from tests.support.standings import bump_standings_versions

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


async def _insert_standings(
    pool: asyncpg.Pool, rows: list[tuple[str, str, float, datetime]]
) -> None:
    await pool.executemany(
        "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
        " last_event_ts) VALUES ('c1', $1, $2, $3, $4, $4)",
        rows,
    )


async def test_write_refuses_until_built_then_ranks(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    writes = {"alltime": [StandingWrite("a", 5.0, T0), StandingWrite("b", 7.0, T0)]}
    # without a marker, a write after PostgreSQL's version 3 is refused: Redis lost the board
    with pytest.raises(CompetitionNotBuiltError) as refused:
        await store.write("c1", SortOrder.DESC, writes, VersionStep(3, 4))
    assert refused.value.staleness is Staleness.MISSING
    assert await store.size("c1", "alltime") == 0
    assert await store.rebuild(pool, "c1", SortOrder.DESC) == 0
    assert await store.built_markers(["c1"]) == ["0"]  # no batch applied yet: version 0
    result = await store.write("c1", SortOrder.DESC, writes, VersionStep(0, 1))
    assert result["alltime"].total == 2
    assert result["alltime"].ranks == {"b": 1, "a": 2}
    assert await store.built_markers(["c1"]) == ["1"]
    # a replay writes the same state
    again = await store.write("c1", SortOrder.DESC, writes, VersionStep(1, 2))
    assert again == result
    # a changed score moves the member; the old one is gone
    moved = await store.write(
        "c1",
        SortOrder.DESC,
        {"alltime": [StandingWrite("a", 9.0, T0 + timedelta(seconds=1))]},
        VersionStep(2, 3),
    )
    assert moved["alltime"].ranks == {"a": 1}
    assert moved["alltime"].total == 2
    top = await store.top("c1", "alltime", SortOrder.DESC, 0, 10)
    assert [(e.rank, e.user_id, e.score) for e in top] == [(1, "a", 9.0), (2, "b", 7.0)]
    removed = await store.write(
        "c1", SortOrder.DESC, {"alltime": [StandingWrite("a", None, None)]}, VersionStep(3, 4)
    )
    assert removed["alltime"].ranks == {"a": None}
    ranks = await store.ranks("c1", "alltime", SortOrder.DESC, ["a", "b"])
    assert ranks.total == 1
    assert set(ranks.found) == {"b"}
    assert ranks.found["b"].rank == 1


async def test_a_first_batch_builds_a_new_competition_without_a_rebuild(
    settings: PlatformSettings, redis_client: Redis
) -> None:
    """Version 0 in PostgreSQL: nothing of the competition exists anywhere, so a missing marker
    loses nothing; the first batch writes and sets the marker (no refusal, no rebuild)."""
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    writes = {"alltime": [StandingWrite("a", 5.0, T0), StandingWrite("b", 7.0, T0)]}
    assert await store.built_markers(["c1"]) == [None]
    result = await store.write("c1", SortOrder.DESC, writes, VersionStep(0, 1))
    assert result["alltime"].ranks == {"b": 1, "a": 2}
    assert await store.built_markers(["c1"]) == ["1"]


@pytest.mark.parametrize(
    ("marker", "expected", "why"),
    [
        ("3", 5, Staleness.BEHIND),  # Redis lost two batches (an older snapshot)
        ("6", 5, Staleness.AHEAD),  # Redis kept a batch PostgreSQL rolled back
        ("1764620000.25", 5, Staleness.BEHIND),  # a marker from before versions
    ],
)
async def test_write_refuses_a_marker_at_another_version_and_writes_nothing(
    settings: PlatformSettings, redis_client: Redis, marker: str, expected: int, why: Staleness
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await redis_client.set(built_key(settings.redis_key_prefix, "c1"), marker)
    with pytest.raises(CompetitionNotBuiltError) as refused:
        await store.write(
            "c1",
            SortOrder.DESC,
            {"alltime": [StandingWrite("a", 5.0, T0)]},
            VersionStep(expected, expected + 1),
        )
    assert refused.value.staleness is why
    assert await store.size("c1", "alltime") == 0
    assert await store.built_markers(["c1"]) == [marker]


def test_staleness_compares_a_marker_with_postgres_version() -> None:
    assert staleness(None, 0) is Staleness.MISSING
    assert staleness(b"7", 7) is None
    assert staleness("6", 7) is Staleness.BEHIND
    assert staleness("8", 7) is Staleness.AHEAD
    assert staleness("1764620000.25", 7) is Staleness.BEHIND


async def test_rebuild_sets_the_marker_to_postgres_version(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await _insert_standings(pool, [("alltime", "a", 1.0, T0)])
    async with pool.acquire() as connection:
        for _ in range(7):
            await bump_standings_versions(connection, ["c1"])
        assert await read_standings_version(connection, "c1") == 7
        assert await read_standings_version(connection, "c-none") == 0
    await redis_client.set(built_key(settings.redis_key_prefix, "c1"), "3")
    assert await store.rebuild(pool, "c1", SortOrder.DESC) == 1
    assert await store.built_markers(["c1", "c-none"]) == ["7", None]
    # the next batch (PostgreSQL 7 -> 8) is accepted again
    await store.write(
        "c1", SortOrder.DESC, {"alltime": [StandingWrite("b", 2.0, T0)]}, VersionStep(7, 8)
    )
    assert await store.built_markers(["c1"]) == ["8"]


async def test_rebuild_equals_postgres_and_drops_stale_windows(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await store.rebuild(pool, "c1", SortOrder.ASC)
    await store.write(
        "c1", SortOrder.ASC, {"2026-W01": [StandingWrite("ghost", 1.0, T0)]}, VersionStep(0, 0)
    )
    rows = [("alltime", f"u{i}", float(i % 7), T0 + timedelta(seconds=i)) for i in range(300)]
    await _insert_standings(pool, rows)
    assert await store.rebuild(pool, "c1", SortOrder.ASC) == 300
    top = await store.top("c1", "alltime", SortOrder.ASC, 0, 300)
    expected = sorted(rows, key=lambda row: (row[2], row[3]))
    assert [e.user_id for e in top] == [row[1] for row in expected]
    assert await store.size("c1", "2026-W01") == 0


async def test_rebuild_racing_a_write_keeps_the_newer_standing(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await _insert_standings(pool, [("alltime", f"u{i}", float(i), T0) for i in range(20_000)])
    await store.rebuild(pool, "c1", SortOrder.DESC)

    async def writer() -> None:
        await asyncio.sleep(0.01)
        async with pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "UPDATE standings SET score = 1e9 WHERE competition_id = 'c1' AND user_id = 'u0'"
            )
            new = (await bump_standings_versions(connection, ["c1"]))["c1"]
        try:
            await store.write(
                "c1",
                SortOrder.DESC,
                {"alltime": [StandingWrite("u0", 1e9, T0)]},
                VersionStep(0, new),
            )
        except CompetitionNotBuiltError:  # the rebuild read the commit first: as a ranker would
            await store.rebuild(pool, "c1", SortOrder.DESC)

    await asyncio.gather(store.rebuild(pool, "c1", SortOrder.DESC), writer())
    top = await store.top("c1", "alltime", SortOrder.DESC, 0, 1)
    assert top[0].user_id == "u0"
    assert await store.built_markers(["c1"]) == ["1"]


async def _create_c1(pool: asyncpg.Pool) -> None:
    """The competition row: a rebuild indexes only a competition PostgreSQL holds."""
    await pool.execute(
        "INSERT INTO competitions (id, name, sort_order, operator, reset)"
        " VALUES ('c1', 'c1', 'desc', 'best', 'none')"
    )


async def _index(redis: Redis, settings: PlatformSettings) -> set[str]:
    members = await redis.smembers(windows_key(settings.redis_key_prefix, "c1"))
    return {member.decode() for member in members}


async def test_the_window_index_follows_first_batches_writes_removals_and_rebuilds(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    """Every window with a ranking is in the index and no other: a rebuild reads it instead
    of scanning the keyspace, so a window missing from it would survive a rebuild stale."""
    await _create_c1(pool)
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    prefix = settings.redis_key_prefix
    first = {"alltime": [StandingWrite("a", 5.0, T0)], "2026-W48": [StandingWrite("a", 5.0, T0)]}
    await store.write("c1", SortOrder.DESC, first, VersionStep(0, 1))  # a new competition
    assert await _index(redis_client, settings) == {WINDOWS_COMPLETE, "alltime", "2026-W48"}
    assert await competition_windows(redis_client, prefix, "c1") == {"alltime", "2026-W48"}
    # the only user leaves one window: it is gone from Redis and from the index
    leave = {"2026-W48": [StandingWrite("a", None, None)], "2026-W49": [StandingWrite("b", 1, T0)]}
    await store.write("c1", SortOrder.DESC, leave, VersionStep(1, 2))
    assert await competition_windows(redis_client, prefix, "c1") == {"alltime", "2026-W49"}
    # PostgreSQL holds only alltime: the rebuild drops 2026-W49 and the index says so
    await _insert_standings(pool, [("alltime", "a", 5.0, T0)])
    assert await store.rebuild(pool, "c1", SortOrder.DESC) == 1
    assert await store.size("c1", "2026-W49") == 0
    assert await _index(redis_client, settings) == {WINDOWS_COMPLETE, "alltime"}
    assert await competition_windows(redis_client, prefix, "c1") == {"alltime"}


async def test_a_board_from_before_the_index_is_found_by_scan_and_then_indexed(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    """An upgraded deployment's boards have a marker and no index: writes do not start a
    partial one, the windows are found by SCAN, and the next rebuild writes the index whole."""
    await _create_c1(pool)
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    prefix = settings.redis_key_prefix
    await store.rebuild(pool, "c1", SortOrder.DESC)
    await redis_client.delete(windows_key(prefix, "c1"))  # as the previous version left it
    writes = {"alltime": [StandingWrite("a", 5.0, T0)], "2026-W01": [StandingWrite("g", 1, T0)]}
    await store.write("c1", SortOrder.DESC, writes, VersionStep(0, 0))
    assert not await redis_client.exists(windows_key(prefix, "c1"))
    assert await competition_windows(redis_client, prefix, "c1") == {"alltime", "2026-W01"}
    await _insert_standings(pool, [("alltime", "a", 5.0, T0)])
    assert await store.rebuild(pool, "c1", SortOrder.DESC) == 1
    assert await store.size("c1", "2026-W01") == 0  # the stale window the SCAN found is gone
    assert await _index(redis_client, settings) == {WINDOWS_COMPLETE, "alltime"}


async def test_windows_are_resolved_without_scanning_the_keyspace(
    settings_factory: SettingsFactory, tmp_path: Path, artifacts_dir: Path
) -> None:
    """The point of the index (docs/performance.md, issue #18): a rebuild's cost must not grow
    with every other key in Redis. A private Redis counts the SCANs."""
    with private_redis(tmp_path, artifacts_dir / "window-index-redis.log") as server:
        private = settings_factory(redis_url=server.url)
        redis = create_redis(private)
        try:
            store = LeaderboardStore(redis, private.redis_key_prefix)
            prefix = private.redis_key_prefix

            async def scans() -> int:
                stats = await redis.info("commandstats")
                return int(stats.get("cmdstat_scan", {}).get("calls", 0))

            before = await scans()
            assert await competition_windows(redis, prefix, "never-built") == set()
            await store.write(
                "c1", SortOrder.DESC, {"alltime": [StandingWrite("a", 5, T0)]}, VersionStep(0, 1)
            )
            assert await competition_windows(redis, prefix, "c1") == {"alltime"}
            assert await scans() == before
            await redis.delete(windows_key(prefix, "c1"))  # a board from before the index
            assert await competition_windows(redis, prefix, "c1") == {"alltime"}
            assert await scans() > before
        finally:
            await redis.aclose()


async def test_a_rebuild_of_a_competition_postgres_does_not_hold_leaves_no_index(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    """Deleted (its tombstone expired or removed): the rebuild clears its windows and sets a
    marker, as before the index, and writes no index that would outlive that marker."""
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await store.write(
        "gone", SortOrder.DESC, {"alltime": [StandingWrite("a", 1.0, T0)]}, VersionStep(0, 1)
    )
    assert await store.rebuild(pool, "gone", SortOrder.DESC) == 0
    assert await store.size("gone", "alltime") == 0
    assert not await redis_client.exists(windows_key(settings.redis_key_prefix, "gone"))
