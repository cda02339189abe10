"""Deleting a competition against readers' rebuilds (real PostgreSQL, Redis and ingest app).

Readers (query, notifier) rebuild a lost board from a pool, without the competition lock; a
rebuild whose PostgreSQL view predates the deletion must not bring the keys back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from shared import leaderboard_store
from shared.competitions import create_competition
from shared.leaderboard_store import LeaderboardStore, is_tombstone
from shared.redis_keys import built_key, competition_keys
from shared.schemas.competition import CompetitionCreate, SortOrder
from tests.support.servers import running_app

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
CID = "doomed"


async def _seed(pool: asyncpg.Pool, store: LeaderboardStore) -> None:
    await create_competition(pool, CompetitionCreate(id=CID, name="Doomed"))
    await pool.executemany(
        "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
        " last_event_ts) VALUES ($1, 'alltime', $2, $3, $4, $4)",
        [(CID, f"u{n}", float(n), T0) for n in range(10)],
    )
    assert await store.rebuild(pool, CID, SortOrder.DESC) == 10


async def _left(redis: Redis, settings: PlatformSettings) -> list[str]:
    keys = await competition_keys(redis, settings.redis_key_prefix, CID)
    return sorted(key.decode() if isinstance(key, bytes) else key for key in keys)


async def _delete(settings: PlatformSettings, token: str) -> httpx.Response:
    async with (
        running_app(create_ingest(settings), settings) as ingest,
        httpx.AsyncClient(timeout=10) as client,
    ):
        return await client.delete(
            f"{ingest}/api/v1/competitions/{CID}", headers={"Authorization": f"Bearer {token}"}
        )


@pytest.mark.parametrize("marker_lost", [True, False], ids=["marker-missing", "marker-held"])
async def test_a_rebuild_whose_view_predates_the_deletion_brings_nothing_back(
    settings: PlatformSettings,
    pool: asyncpg.Pool,
    redis_client: Redis,
    token_for: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    marker_lost: bool,
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await _seed(pool, store)
    marker = built_key(settings.redis_key_prefix, CID)
    if marker_lost:  # the worst case: the reader rebuilds because the marker is gone
        await redis_client.delete(marker)
    viewed, resume = asyncio.Event(), asyncio.Event()
    original = leaderboard_store._read_standings
    views: list[tuple[bool, int, int]] = []

    async def paused_read(source: Any, competition_id: str) -> Any:
        exists, version, rows = await original(source, competition_id)
        views.append((exists, version, len(rows)))
        if len(views) == 1:  # the first view: read before the deletion, held across it
            viewed.set()
            await resume.wait()
        return exists, version, rows

    monkeypatch.setattr(leaderboard_store, "_read_standings", paused_read)
    rebuild = asyncio.create_task(store.rebuild(pool, CID, SortOrder.DESC))
    await asyncio.wait_for(viewed.wait(), 10)
    deleted = await _delete(settings, token_for("ops", "admin"))
    assert deleted.status_code == 204, deleted.text
    resume.set()
    assert await asyncio.wait_for(rebuild, 10) == 0  # started over and found it deleted
    assert views[0] == (True, 0, 10)
    assert views[-1] == (False, 0, 0)
    assert await _left(redis_client, settings) == [marker]
    assert is_tombstone(await redis_client.get(marker))


async def test_an_id_created_again_after_a_deletion_is_built_afresh(
    settings: PlatformSettings,
    pool: asyncpg.Pool,
    redis_client: Redis,
    token_for: Callable[..., str],
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await _seed(pool, store)
    assert (await _delete(settings, token_for("ops", "admin"))).status_code == 204
    assert await pool.fetchval("SELECT count(*) FROM standings WHERE competition_id = $1", CID) == 0
    # the tombstone is no version: a competition created again under the id is rebuilt
    await _seed(pool, store)
    assert await store.built_markers([CID]) == ["0"]
    top = await store.top(CID, "alltime", SortOrder.DESC, 0, 3)
    assert [entry.user_id for entry in top] == ["u9", "u8", "u7"]
