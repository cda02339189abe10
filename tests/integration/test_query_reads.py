"""Query service reads against real Redis and PostgreSQL, checked against an oracle.

Standings are seeded through the ranker's write path (PostgreSQL rows + LeaderboardStore
rebuild/write) and every endpoint is compared with :func:`expected_order`, computed in Python.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from podium.settings import PlatformSettings
from services.query.app import create_app
from services.query.schemas import (
    CompetitionDetail,
    CompetitionList,
    Neighbourhood,
    TopPage,
    UsersRanks,
    UserStanding,
)
from shared.change_feed import encode_change_message
from shared.db import create_pool
from shared.kafka import connection_options
from shared.leaderboard_store import LeaderboardStore
from shared.redis_client import create_redis
from shared.schemas.change_message import ChangeMessage
from shared.schemas.competition import Competition, ResetSchedule, SortOrder
from shared.windows import period_label
from tests.support.query_seed import (
    T0,
    Row,
    expected_order,
    make_rows,
    seed_competition,
    seed_standings,
    set_standing,
)
from tests.support.servers import running_app


@dataclass
class QueryHarness:
    """A running query service plus the write path to seed it."""

    url: str
    client: httpx.AsyncClient
    pool: asyncpg.Pool
    store: LeaderboardStore
    settings: PlatformSettings

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get(f"{self.url}{path}", **kwargs)


@pytest.fixture
async def harness(settings: PlatformSettings) -> AsyncIterator[QueryHarness]:
    pool = await create_pool(settings)
    redis = create_redis(settings)
    try:
        async with (
            running_app(create_app(settings), settings) as url,
            httpx.AsyncClient(timeout=10) as client,
        ):
            yield QueryHarness(
                url, client, pool, LeaderboardStore(redis, settings.redis_key_prefix), settings
            )
    finally:
        await redis.aclose()
        await pool.close()


async def _all_pages(
    harness: QueryHarness, cid: str, limit: int, window: str = "alltime"
) -> tuple[list[dict[str, Any]], int]:
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": limit, "window": window}
        if cursor:
            query["cursor"] = cursor
        response = await harness.get(f"/api/v1/leaderboards/{cid}/top", params=query)
        assert response.status_code == 200, response.text
        page = TopPage.model_validate(response.json())
        entries += [entry.model_dump() for entry in page.entries]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return entries, pages


@pytest.mark.parametrize("sort_order", [SortOrder.DESC, SortOrder.ASC])
async def test_pages_through_cursors_equal_the_full_order(
    harness: QueryHarness, sort_order: SortOrder
) -> None:
    competition = await seed_competition(harness.pool, id="pages", sort_order=sort_order)
    rows = make_rows("alltime", 203)
    await seed_standings(harness.pool, harness.store, competition, rows)
    expected = expected_order(rows, "alltime", sort_order)

    entries, pages = await _all_pages(harness, "pages", limit=10)
    assert entries == expected
    assert pages == 21  # 20 full pages and 3 entries; no empty trailing page
    entries, _ = await _all_pages(harness, "pages", limit=100)
    assert entries == expected
    first = await harness.get("/api/v1/leaderboards/pages/top")
    assert first.json()["entries"] == expected[:10]  # default limit


async def test_cursor_survives_changes_above_the_boundary(harness: QueryHarness) -> None:
    competition = await seed_competition(harness.pool, id="stable")
    rows = make_rows("alltime", 30)
    await seed_standings(harness.pool, harness.store, competition, rows)
    before = expected_order(rows, "alltime", SortOrder.DESC)

    first = (await harness.get("/api/v1/leaderboards/stable/top", params={"limit": 10})).json()
    assert first["entries"] == before[:10]
    # Between page reads: a newcomer takes rank 1 and the anchor itself improves.
    # An offset would now repeat an entry; the anchor cursor continues after the anchor's old place.
    await set_standing(harness.pool, harness.store, competition, Row("alltime", "new", 1e6, T0))
    anchor = before[9]["user_id"]
    await set_standing(harness.pool, harness.store, competition, Row("alltime", anchor, 5e5, T0))
    second = (
        await harness.get(
            "/api/v1/leaderboards/stable/top",
            params={"limit": 10, "cursor": first["next_cursor"]},
        )
    ).json()
    assert [e["user_id"] for e in second["entries"]] == [e["user_id"] for e in before[10:20]]
    # ranks are live: the newcomer above pushes everyone after the boundary down by one
    assert [e["rank"] for e in second["entries"]] == list(range(12, 22))


async def test_user_around_and_friends(harness: QueryHarness) -> None:
    competition = await seed_competition(harness.pool, id="ranks", sort_order=SortOrder.ASC)
    rows = make_rows("alltime", 40)
    await seed_standings(harness.pool, harness.store, competition, rows)
    expected = expected_order(rows, "alltime", SortOrder.ASC)
    by_user = {entry["user_id"]: entry for entry in expected}

    for entry in (expected[0], expected[17], expected[-1]):
        response = await harness.get(f"/api/v1/leaderboards/ranks/users/{entry['user_id']}")
        standing = UserStanding.model_validate(response.json())
        assert (standing.rank, standing.score, standing.total) == (
            entry["rank"],
            entry["score"],
            40,
        )
    missing = await harness.get("/api/v1/leaderboards/ranks/users/nobody")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"

    async def around(index: int, radius: int) -> list[dict[str, Any]]:
        user = expected[index]["user_id"]
        response = await harness.get(
            f"/api/v1/leaderboards/ranks/around/{user}", params={"radius": radius}
        )
        body = Neighbourhood.model_validate(response.json())
        assert body.rank == index + 1
        assert body.total == 40
        return [entry.model_dump() for entry in body.entries]

    assert await around(0, 3) == expected[0:4]  # top edge: nothing above
    assert await around(39, 3) == expected[36:40]  # bottom edge: nothing below
    assert await around(20, 3) == expected[17:24]
    assert await around(20, 0) == [expected[20]]
    assert (await harness.get("/api/v1/leaderboards/ranks/around/nobody")).status_code == 404

    friends = [expected[30]["user_id"], "ghost", expected[2]["user_id"], expected[30]["user_id"]]
    response = await harness.get(
        "/api/v1/leaderboards/ranks/users", params={"ids": ",".join(friends)}
    )
    body = UsersRanks.model_validate(response.json())
    assert [
        {name: value for name, value in e.model_dump().items() if name != "percentile"}
        for e in body.entries
    ] == [
        by_user[expected[2]["user_id"]],
        by_user[expected[30]["user_id"]],
    ]
    assert body.absent == ["ghost"]
    assert body.total == 40


async def test_windows_alltime_current_and_a_past_label(harness: QueryHarness) -> None:
    competition = await seed_competition(harness.pool, id="daily", reset=ResetSchedule.DAILY)
    today = period_label(ResetSchedule.DAILY, datetime.now(UTC), "UTC")
    assert today is not None
    rows = (
        make_rows("alltime", 25)
        + make_rows(today, 12, prefix="t", ties_every=3)
        + make_rows("2026-11-20", 8, prefix="p")
    )
    await seed_standings(harness.pool, harness.store, competition, rows)

    for window, label in (("alltime", "alltime"), ("current", today), ("2026-11-20", "2026-11-20")):
        entries, _ = await _all_pages(harness, "daily", limit=5, window=window)
        assert entries == expected_order(rows, label, SortOrder.DESC), window
        user = entries[3]["user_id"]
        response = await harness.get(
            f"/api/v1/leaderboards/daily/users/{user}", params={"window": window}
        )
        assert response.json()["rank"] == 4
        assert response.json()["window"] == label
    empty = await harness.get("/api/v1/leaderboards/daily/top", params={"window": "2020-01-01"})
    assert empty.json()["entries"] == []

    detail = await harness.get("/api/v1/competitions/daily")
    body = CompetitionDetail.model_validate(detail.json())
    assert body.entrants == 25
    assert body.current_window == today
    assert {(w.window, w.entrants) for w in body.windows} == {
        ("alltime", 25),
        (today, 12),
        ("2026-11-20", 8),
    }


async def test_competitions_list_is_paginated(harness: QueryHarness) -> None:
    for index in range(7):
        await seed_competition(harness.pool, id=f"comp-{index}")
    seen: list[str] = []
    cursor = None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = CompetitionList.model_validate(
            (await harness.get("/api/v1/competitions", params=query)).json()
        )
        seen += [competition.id for competition in body.competitions]
        cursor = body.next_cursor
        if cursor is None:
            break
    assert seen == [f"comp-{index}" for index in range(7)]


async def test_private_competition_needs_the_read_scope(
    harness: QueryHarness, token_for: Callable[..., str]
) -> None:
    competition = await seed_competition(harness.pool, id="secret", visibility="private")
    await seed_competition(harness.pool, id="open")
    await seed_standings(harness.pool, harness.store, competition, make_rows("alltime", 5))
    paths = [
        "/api/v1/leaderboards/secret/top",
        "/api/v1/leaderboards/secret/users/u0001",
        "/api/v1/leaderboards/secret/around/u0001",
        "/api/v1/leaderboards/secret/users?ids=u0001",
        "/api/v1/competitions/secret",
    ]
    wrong_scope = {"authorization": f"Bearer {token_for('p1', 'scores:write')}"}
    reader = {"authorization": f"Bearer {token_for('p1', 'leaderboards:read')}"}
    admin = {"authorization": f"Bearer {token_for('root', 'admin')}"}
    for path in paths:
        anonymous = await harness.get(path)
        assert anonymous.status_code == 401, path
        assert set(anonymous.json()) == {"error"}
        assert "u0001" not in anonymous.text
        denied = await harness.get(path, headers=wrong_scope)
        assert denied.status_code == 404, path
        assert set(denied.json()) == {"error"}
        # the same answer as for a competition that does not exist
        ghost = await harness.get(path.replace("secret", "ghost"), headers=wrong_scope)
        assert ghost.json()["error"] == {
            **denied.json()["error"],
            "message": denied.json()["error"]["message"].replace("secret", "ghost"),
            "details": {"competition_id": "ghost"},
        }
        for headers in (reader, admin):
            allowed = await harness.get(path, headers=headers)
            assert allowed.status_code == 200, path
            assert allowed.headers["cache-control"].startswith("private")

    listing = await harness.get("/api/v1/competitions")
    assert [c["id"] for c in listing.json()["competitions"]] == ["open"]
    listing = await harness.get("/api/v1/competitions", headers=reader)
    assert [c["id"] for c in listing.json()["competitions"]] == ["open", "secret"]


async def test_etag_304_and_gzip(harness: QueryHarness) -> None:
    competition = await seed_competition(harness.pool, id="etag")
    await seed_standings(harness.pool, harness.store, competition, make_rows("alltime", 150))
    first = await harness.get("/api/v1/leaderboards/etag/top", params={"limit": 100})
    etag = first.headers["etag"]
    assert first.headers["content-encoding"] == "gzip"  # httpx accepts gzip; body > 1 KiB
    again = await harness.get(
        "/api/v1/leaderboards/etag/top",
        params={"limit": 100},
        headers={"if-none-match": etag},
    )
    assert again.status_code == 304
    assert again.content == b""
    small = await harness.get(
        "/api/v1/leaderboards/etag/top", params={"limit": 2}, headers={"if-none-match": etag}
    )
    assert small.status_code == 200
    assert "content-encoding" not in small.headers
    ranks = await harness.get("/api/v1/leaderboards/etag/users/u0001")
    cached = await harness.get(
        "/api/v1/leaderboards/etag/users/u0001", headers={"if-none-match": ranks.headers["etag"]}
    )
    assert cached.status_code == 304


async def test_new_score_invalidates_the_cached_page_within_the_ttl(
    harness: QueryHarness,
) -> None:
    competition = await seed_competition(harness.pool, id="fresh")
    await seed_standings(harness.pool, harness.store, competition, make_rows("alltime", 20))
    first = await harness.get("/api/v1/leaderboards/fresh/top")
    etag = first.headers["etag"]
    await set_standing(
        harness.pool, harness.store, competition, Row("alltime", "champion", 1e9, T0)
    )
    await asyncio.sleep(harness.settings.query_cache_ttl_ms / 1000)
    after = await harness.get("/api/v1/leaderboards/fresh/top", headers={"if-none-match": etag})
    assert after.status_code == 200
    assert after.json()["entries"][0] == {"rank": 1, "user_id": "champion", "score": 1e9}


async def _page_cache_count(client: httpx.AsyncClient, url: str, result: str) -> float:
    metrics = (await client.get(f"{url}/metrics")).text
    match = re.search(rf'^podium_query_page_cache_total{{result="{result}"}} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


async def test_page_cache_serves_hot_pages_until_a_change_message(
    settings_factory: Callable[..., PlatformSettings], settings: PlatformSettings
) -> None:
    """With a long TTL the page stays cached; the ranker's change message retires it."""
    long_ttl = settings_factory(query_cache_ttl_ms=60_000)
    pool = await create_pool(long_ttl)
    redis = create_redis(long_ttl)
    store = LeaderboardStore(redis, long_ttl.redis_key_prefix)
    producer = AIOKafkaProducer(**connection_options(long_ttl))
    await producer.start()
    app = create_app(long_ttl)
    try:
        async with running_app(app, long_ttl) as url, httpx.AsyncClient(timeout=10) as client:
            competition: Competition = await seed_competition(pool, id="hot")
            await seed_standings(pool, store, competition, make_rows("alltime", 20))
            first = (await client.get(f"{url}/api/v1/leaderboards/hot/top")).json()
            await set_standing(pool, store, competition, Row("alltime", "champion", 1e9, T0))
            hits_before = await _page_cache_count(client, url, "hit")
            cached = (await client.get(f"{url}/api/v1/leaderboards/hot/top")).json()
            assert cached == first  # served from the micro-cache, Redis not read
            assert await _page_cache_count(client, url, "hit") == hits_before + 1

            deadline = asyncio.get_running_loop().time() + 30
            while not app.state.change_feed.running:
                assert asyncio.get_running_loop().time() < deadline, "feed never attached"
                await asyncio.sleep(0.05)
            message = ChangeMessage(
                competition_id="hot",
                version=1,
                emitted_at=datetime.now(UTC) + timedelta(seconds=0),
                windows=[],
            )
            key, value = encode_change_message(message)
            await producer.send_and_wait(long_ttl.topic_changes, value, key=key)
            while True:
                body = (await client.get(f"{url}/api/v1/leaderboards/hot/top")).json()
                if body["entries"][0]["user_id"] == "champion":
                    break
                assert asyncio.get_running_loop().time() < deadline, "page never invalidated"
                await asyncio.sleep(0.05)
            # the query stage of freshness is measured: emitted_at -> pages retired
            metrics = (await client.get(f"{url}/metrics")).text
            lag = re.search(r"^podium_query_change_lag_seconds_count (\S+)$", metrics, re.M)
            assert lag is not None
            assert float(lag.group(1)) >= 1
    finally:
        await producer.stop()
        await redis.aclose()
        await pool.close()


async def test_a_request_after_a_change_never_shares_a_read_started_before_it(
    settings_factory: Callable[..., PlatformSettings], settings: PlatformSettings
) -> None:
    """Single flight is per cache generation: a read in flight when a change message arrives
    may predate the ranker's write, so a request arriving after the change reads again."""
    long_ttl = settings_factory(query_cache_ttl_ms=60_000)
    pool = await create_pool(long_ttl)
    redis = create_redis(long_ttl)
    store = LeaderboardStore(redis, long_ttl.redis_key_prefix)
    app = create_app(long_ttl)
    try:
        async with running_app(app, long_ttl) as url, httpx.AsyncClient(timeout=10) as client:
            competition = await seed_competition(pool, id="flight")
            await seed_standings(pool, store, competition, make_rows("alltime", 5))
            context = app.state.query
            read_page = context.reader.page
            release = asyncio.Event()
            reads = 0

            async def slow_first_read(*args: Any, **kwargs: Any) -> Any:
                nonlocal reads
                reads += 1
                if reads == 1:
                    await release.wait()  # the read that started before the change
                return await read_page(*args, **kwargs)

            context.reader.page = slow_first_read
            path = f"{url}/api/v1/leaderboards/flight/top"
            before = asyncio.create_task(client.get(path))
            while reads == 0:
                await asyncio.sleep(0.01)
            await set_standing(pool, store, competition, Row("alltime", "champion", 1e9, T0))
            context.pages.invalidate("flight")  # what the change message does
            # joining the blocked read would hang here until it is released
            after = (await asyncio.wait_for(client.get(path), 5)).json()
            assert reads == 2
            assert after["entries"][0]["user_id"] == "champion"
            release.set()
            assert (await before).status_code == 200
            # the page read before the change was not cached past it
            again = (await client.get(path)).json()
            assert again["entries"][0]["user_id"] == "champion"
    finally:
        await redis.aclose()
        await pool.close()
