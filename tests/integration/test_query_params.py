"""Bad parameters get a 400 JSON error naming the field; no input ever gets a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from podium.settings import PlatformSettings
from services.query.app import create_app
from shared.db import create_pool
from shared.leaderboard_store import LeaderboardStore
from shared.redis_client import create_redis
from shared.schemas.competition import ResetSchedule
from tests.support.query_seed import make_rows, seed_competition, seed_standings
from tests.support.servers import running_app


@pytest.fixture
async def query_url(settings: PlatformSettings) -> AsyncIterator[str]:
    pool = await create_pool(settings)
    redis = create_redis(settings)
    try:
        store = LeaderboardStore(redis, settings.redis_key_prefix)
        competition = await seed_competition(pool, id="weekly", reset=ResetSchedule.WEEKLY)
        await seed_standings(pool, store, competition, make_rows("alltime", 30))
        async with running_app(create_app(settings), settings) as url:
            yield url
    finally:
        await redis.aclose()
        await pool.close()


def _assert_error(response: httpx.Response, status: int, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"]
    assert error["message"]
    if field is not None:
        assert error["details"]["field"] == field


async def test_bad_parameters_are_400_naming_the_field(query_url: str) -> None:
    base = f"{query_url}/api/v1/leaderboards/weekly"
    async with httpx.AsyncClient(timeout=10) as client:
        for limit in ("0", "101", "-1", "ten", "1e3", "99999999999999"):
            _assert_error(await client.get(f"{base}/top", params={"limit": limit}), 400, "limit")
        for radius in ("51", "1000000", "-3", "x"):
            response = await client.get(f"{base}/around/u0001", params={"radius": radius})
            _assert_error(response, 400, "radius")
        ids = ",".join(f"user{index}" for index in range(101))
        _assert_error(await client.get(f"{base}/users", params={"ids": ids}), 400, "ids")
        _assert_error(await client.get(f"{base}/users", params={"ids": ""}), 400, "ids")
        _assert_error(await client.get(f"{base}/users", params={"ids": "ok,b@d"}), 400, "ids")
        for window in ("yesterday", "2026-11-25", "2026-11", "ALLTIME"):  # weekly labels only
            response = await client.get(f"{base}/top", params={"window": window})
            _assert_error(response, 400, "window")
        assert (await client.get(f"{base}/top", params={"window": "2026-W48"})).status_code == 200

        first = (await client.get(f"{base}/top", params={"limit": 5})).json()
        cursor = first["next_cursor"]
        body, signature = cursor.split(".")
        flipped = ("A" if body[3] != "A" else "B").join((body[:3], body[4:]))
        for tampered in (
            f"{flipped}.{signature}",
            f"{body}.{signature[:-2]}AA",
            cursor + "x",
            "garbage",
            "a.b.c",
            "x" * 600,
        ):
            response = await client.get(f"{base}/top", params={"limit": 5, "cursor": tampered})
            _assert_error(response, 400, "cursor")
        other_window = await client.get(
            f"{base}/top", params={"limit": 5, "cursor": cursor, "window": "2026-W48"}
        )
        _assert_error(other_window, 400, "cursor")
        _assert_error(
            await client.get(f"{query_url}/api/v1/competitions", params={"cursor": cursor}),
            400,
            "cursor",
        )
        _assert_error(await client.get(f"{base}/users/{quote('bad id')}"), 400, "user_id")
        _assert_error(await client.get(f"{query_url}/api/v1/leaderboards/{'x' * 65}/top"), 404)
        _assert_error(await client.get(f"{base}/top", headers={"authorization": "Basic abc"}), 401)


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
_VALUES = st.one_of(
    _TEXT,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.sampled_from(["alltime", "current", "2026-W48", "2026-W99", "0", "100", "50", "101"]),
)


@hypothesis_settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    endpoint=st.sampled_from(["top", "users/u0001", "around/u0001", "users", "ghost"]),
    cid=st.one_of(st.just("weekly"), _TEXT),
    query=st.dictionaries(
        st.sampled_from(["limit", "cursor", "window", "radius", "ids", "other"]),
        _VALUES,
        max_size=4,
    ),
)
async def test_no_input_gets_a_500(
    query_url: str, endpoint: str, cid: str, query: dict[str, str]
) -> None:
    path = f"/api/v1/leaderboards/{quote(cid, safe='')}/{endpoint}"
    if endpoint == "ghost":
        path = f"/api/v1/competitions/{quote(cid, safe='')}"
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{query_url}{path}", params=query)
    assert response.status_code < 500, (path, query, response.text)
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}
