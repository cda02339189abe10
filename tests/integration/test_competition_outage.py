"""PostgreSQL gone at the HTTP edges (ingest, query): a competition the process saw before is
still served from the shared competition cache (stale); one it never saw is a 503 with
Retry-After. The cache TTL is 0, so every lookup asks PostgreSQL (the outage is the pool
closed under the running app)."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
import httpx
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest_app
from services.query.app import create_app as create_query_app
from shared.leaderboard_store import LeaderboardStore
from tests.support.query_seed import make_rows, seed_competition, seed_standings
from tests.support.servers import running_app


def _assert_503(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.headers["retry-after"]) >= 1


def score(event_id: str, competition_id: str) -> dict[str, object]:
    return {"event_id": event_id, "competition_id": competition_id, "user_id": "u1", "value": 1}


async def test_ingest_admits_events_of_a_known_competition_and_503s_unknown_ones(
    settings: PlatformSettings, token_for: Callable[..., str]
) -> None:
    uncached = settings.model_copy(update={"competition_cache_ttl_s": 0.0})
    admin = {"Authorization": f"Bearer {token_for('ops', 'admin')}"}
    server = {"Authorization": f"Bearer {token_for('game', 'scores:write:any')}"}
    app = create_ingest_app(uncached)
    async with (
        running_app(app, uncached) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        created = await client.post(
            "/api/v1/competitions", json={"id": "known", "name": "Cup"}, headers=admin
        )
        assert created.status_code == 201, created.text
        await app.state.resources.require_pool().close()

        accepted = await client.post("/api/v1/scores", json=score("e1", "known"), headers=server)
        assert accepted.status_code == 202, accepted.text
        _assert_503(await client.post("/api/v1/scores", json=score("e2", "nope"), headers=server))
        batch = {"events": [score("e3", "known"), score("e4", "nope")]}
        _assert_503(await client.post("/api/v1/scores/batch", json=batch, headers=server))


async def test_query_reads_a_known_competition_and_503s_unknown_ones(
    settings: PlatformSettings, pool: asyncpg.Pool, redis_client: Redis
) -> None:
    uncached = settings.model_copy(update={"competition_cache_ttl_s": 0.0, "query_cache_ttl_ms": 0})
    competition = await seed_competition(pool, id="known")
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    await seed_standings(pool, store, competition, make_rows("alltime", 5))
    app = create_query_app(uncached)
    async with (
        running_app(app, uncached) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        before = await client.get("/api/v1/leaderboards/known/top")
        assert before.status_code == 200, before.text
        await app.state.resources.require_pool().close()
        after = await client.get("/api/v1/leaderboards/known/top")
        assert after.status_code == 200, after.text
        assert after.json() == before.json()
        _assert_503(await client.get("/api/v1/leaderboards/nope/top"))
        _assert_503(await client.get("/api/v1/leaderboards/nope/users/u1"))
