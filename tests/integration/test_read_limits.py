"""Read limits (issue #15) on the real services: query replicas and notifier connects.

Buckets live in the real Redis, so two query replicas share one; leases keep the hot path
off Redis (counted on a private Redis server, whose command statistics are this test's own).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import redis

from podium.settings import PlatformSettings
from services.notifier.app import create_app as create_notifier
from services.query.app import create_app as create_query
from shared.db import create_pool
from shared.leaderboard_store import LeaderboardStore
from shared.redis_client import create_redis
from tests.support.notifier_clients import closed_with, connect, receive, ws_url
from tests.support.private_redis import private_redis
from tests.support.query_seed import make_rows, seed_competition, seed_standings
from tests.support.servers import running_app

PATH = "/api/v1/competitions/none-such"  # any read is charged; this one is cheap (404)


def _statuses(responses: list[httpx.Response]) -> list[int]:
    return [response.status_code for response in responses]


async def test_two_query_replicas_share_one_bucket_and_answer_429_with_retry_after(
    settings_factory: Callable[..., PlatformSettings], settings: PlatformSettings
) -> None:
    # 64 tokens, refilled at 0.5/s; leases of 4 (64 // 16)
    limited = settings_factory(
        query_rate_anonymous_burst=64, query_rate_anonymous_per_s=0.5, rate_lease_max_tokens=4
    )
    async with (
        running_app(create_query(limited), limited) as first,
        running_app(create_query(limited), limited) as second,
        httpx.AsyncClient(timeout=10) as client,
    ):
        responses = [
            await client.get(f"{replica}{PATH}") for _ in range(50) for replica in (first, second)
        ]
        allowed = sum(1 for status in _statuses(responses) if status == 404)
        # one shared bucket: 64 (+ a token or two refilled meanwhile), not 64 per replica;
        # leases may hold a few tokens early (at most 4 per replica), never grant extra
        assert 64 - 2 * 4 <= allowed <= 64 + 4, allowed
        assert set(_statuses(responses)) == {404, 429}
        refused = next(response for response in responses if response.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["content-type"] == "application/json"
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert error["details"]["policy"] == "reader_anonymous"
        assert error["details"]["retry_after_s"] > 0
        assert refused.headers["RateLimit-Limit"] == "64"
        # probes and scrapes are never charged
        assert (await client.get(f"{first}/health/live")).status_code == 200
        assert (await client.get(f"{second}/metrics")).status_code == 200


async def test_a_token_has_its_own_bucket_and_a_bad_token_pays_for_the_address(
    settings_factory: Callable[..., PlatformSettings],
    settings: PlatformSettings,
    token_for: Callable[..., str],
) -> None:
    limited = settings_factory(
        query_rate_anonymous_burst=5,
        query_rate_anonymous_per_s=0.01,
        query_rate_reader_burst=3,
        query_rate_reader_per_s=0.01,
    )
    alice = {"Authorization": f"Bearer {token_for('alice', 'leaderboards:read')}"}
    async with (
        running_app(create_query(limited), limited) as query,
        httpx.AsyncClient(timeout=10) as client,
    ):
        anonymous = [await client.get(f"{query}{PATH}") for _ in range(6)]
        assert _statuses(anonymous) == [404] * 5 + [429]
        # a forged token is charged to the address (already empty): still 429, not 401
        forged = await client.get(f"{query}{PATH}", headers={"Authorization": "Bearer x.y.z"})
        assert forged.status_code == 429
        malformed = await client.get(f"{query}{PATH}", headers={"Authorization": "Basic abc"})
        assert malformed.status_code == 429
        # a valid token is limited per subject, apart from its address
        with_token = [await client.get(f"{query}{PATH}", headers=alice) for _ in range(4)]
        assert _statuses(with_token) == [404] * 3 + [429]
        assert with_token[-1].json()["error"]["details"]["policy"] == "reader"


async def test_the_client_address_is_believed_only_from_trusted_proxies(
    settings_factory: Callable[..., PlatformSettings], settings: PlatformSettings
) -> None:
    shape = {"query_rate_anonymous_burst": 2, "query_rate_anonymous_per_s": 0.01}
    trusting = settings_factory(trusted_proxies=["127.0.0.1"], **shape)
    untrusting = settings_factory(redis_key_prefix=f"{settings.redis_key_prefix}u:", **shape)

    def via(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"198.51.100.9, {address}"}  # the left hop is the client's lie

    async with (
        running_app(create_query(trusting), trusting) as behind_proxy,
        running_app(create_query(untrusting), untrusting) as direct,
        httpx.AsyncClient(timeout=10) as client,
    ):
        first = [
            await client.get(f"{behind_proxy}{PATH}", headers=via("203.0.113.7")) for _ in "abc"
        ]
        assert _statuses(first) == [404, 404, 429]
        # another client behind the proxy has its own bucket; the spoofed left hop is ignored
        other = await client.get(f"{behind_proxy}{PATH}", headers=via("203.0.113.8"))
        assert other.status_code == 404
        # without trusted proxies the header is ignored: every "client" is the peer
        spoofed = [
            await client.get(f"{direct}{PATH}", headers=via(f"203.0.113.{n}")) for n in range(3)
        ]
        assert _statuses(spoofed) == [404, 404, 429]


async def test_the_hot_cache_path_does_not_pay_a_redis_check_per_request(
    settings_factory: Callable[..., PlatformSettings],
    settings: PlatformSettings,
    tmp_path: Path,
    artifacts_dir: Path,
) -> None:
    """200 reads of one cached top page cost a handful of bucket checks (leases of 32),
    counted as EVALSHA calls on a private Redis."""
    with private_redis(tmp_path / "redis", artifacts_dir / "read-limits-redis.log") as server:
        private = settings_factory(redis_url=server.url)  # the schema `settings` migrated
        pool = await create_pool(private)
        store_redis = create_redis(private)
        try:
            competition = await seed_competition(pool, id="hot")
            await seed_standings(
                pool,
                LeaderboardStore(store_redis, private.redis_key_prefix),
                competition,
                make_rows("alltime", 50),
            )
            async with (
                running_app(create_query(private), private) as query,
                httpx.AsyncClient(timeout=10) as client,
            ):
                url = f"{query}/api/v1/leaderboards/hot/top?limit=10"
                assert (await client.get(url)).status_code == 200
                stats = redis.Redis.from_url(server.url)
                before = stats.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
                for _ in range(200):
                    assert (await client.get(url)).status_code == 200
                after = stats.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
                stats.close()
                # 200 requests, leases of 32: about 7 checks (a lease also ends after 100 ms)
                assert after - before <= 40, after - before
        finally:
            await store_redis.aclose()
            await pool.close()


async def test_notifier_connects_over_the_limit_get_an_error_frame_and_1013(
    settings_factory: Callable[..., PlatformSettings], settings: PlatformSettings
) -> None:
    limited = settings_factory(ws_connect_anonymous_burst=2, ws_connect_rate_anonymous_per_s=0.01)
    pool = await create_pool(limited)
    try:
        await seed_competition(pool, id="live")
    finally:
        await pool.close()
    async with running_app(create_notifier(limited), limited) as notifier:
        for _ in range(2):
            async with connect(ws_url(notifier, "live")) as socket:
                assert (await receive(socket))["type"] == "snapshot"
        async with connect(ws_url(notifier, "live")) as refused:
            code, reason, frames = await closed_with(refused)
        assert code == 1013
        assert reason.startswith("rate limited; retry in ")
        assert frames[0]["type"] == "error"
        assert frames[0]["error"]["code"] == "rate_limited"
        assert frames[0]["error"]["details"]["retry_after_s"] > 0
        # the page is charged to the same bucket: 429 with Retry-After
        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(f"{notifier}/leaderboards/live")
        assert page.status_code == 429
        assert int(page.headers["Retry-After"]) >= 1
