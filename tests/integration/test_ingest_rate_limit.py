"""Rate limits: the Redis token bucket, the 429s ingest answers, and failing open."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client import REGISTRY

from devstack.embedded import start_embedded_redis
from devstack.processes import free_port
from podium.settings import PlatformSettings
from services.ingest.app import create_app
from shared.rate_limit.buckets import RateLimiter, RatePolicy
from shared.redis_client import create_redis
from tests.conftest import SettingsFactory
from tests.support.servers import running_app

TokenFor = Callable[..., str]
SLOW = 0.001  # tokens per second: no refill worth a token during a test


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def event(event_id: str, user_id: str = "u1") -> dict[str, object]:
    return {"event_id": event_id, "competition_id": "c1", "user_id": user_id, "value": 1}


async def test_bucket_is_atomic_under_concurrent_takers(settings: PlatformSettings) -> None:
    client = create_redis(settings)
    try:
        limiter = RateLimiter(client, settings.redis_key_prefix, service="test")
        policy = RatePolicy("player", SLOW, 10)
        decisions = await asyncio.gather(*(limiter.acquire(policy, "u1") for _ in range(40)))
        assert sum(decision.allowed for decision in decisions) == 10
        assert sorted(d.remaining for d in decisions if d.allowed) == list(range(10))
        refused = next(decision for decision in decisions if not decision.allowed)
        assert refused.retry_after_s > 100  # one token at 0.001/s
        assert refused.headers()["RateLimit-Remaining"] == "0"
        # a cost is taken whole or not at all, and other subjects have their own bucket
        server = RatePolicy("server", SLOW, 100)
        assert (await limiter.acquire(server, "s1", 60)).allowed
        assert not (await limiter.acquire(server, "s1", 60)).allowed
        assert (await limiter.acquire(server, "s1", 40)).allowed
        assert (await limiter.acquire(server, "s2", 100)).allowed
        assert await client.pttl(limiter.bucket_key(server, "s1")) > 0  # idle buckets expire
    finally:
        await client.aclose()


async def test_ingest_answers_429_with_rate_limit_headers_per_policy(
    settings_factory: SettingsFactory, settings: PlatformSettings, token_for: TokenFor
) -> None:
    limited = settings_factory(
        rate_player_per_s=SLOW,
        rate_player_burst=2,
        rate_server_per_s=SLOW,
        rate_server_burst=10,
        rate_anonymous_per_s=SLOW,
        rate_anonymous_burst=2,
    )
    async with (
        running_app(create_app(limited), limited) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        admin = bearer(token_for("ops", "admin"))
        created = await client.post(
            "/api/v1/competitions", json={"id": "c1", "name": "Cup"}, headers=admin
        )
        assert created.status_code == 201
        player = bearer(token_for("u1", "scores:write"))
        statuses = []
        for index in range(3):
            response = await client.post("/api/v1/scores", json=event(f"p{index}"), headers=player)
            statuses.append(response.status_code)
        assert statuses == [202, 202, 429]
        assert response.json()["error"]["code"] == "rate_limited"
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["ratelimit-limit"] == "2"
        assert response.headers["ratelimit-remaining"] == "0"
        assert int(response.headers["ratelimit-reset"]) > 0
        # another player has their own bucket
        other = bearer(token_for("u2", "scores:write"))
        assert (
            await client.post("/api/v1/scores", json=event("q", "u2"), headers=other)
        ).status_code == 202

        server = bearer(token_for("game", "scores:write:any"))
        batch = {"events": [event(f"s{i}", f"u{i}") for i in range(8)]}
        first = await client.post("/api/v1/scores/batch", json=batch, headers=server)
        assert first.status_code == 202
        assert first.headers["ratelimit-remaining"] == "2"
        batch = {"events": [event(f"t{i}", f"u{i}") for i in range(3)]}
        second = await client.post("/api/v1/scores/batch", json=batch, headers=server)
        assert second.status_code == 429  # a batch costs its number of events
        single = await client.post("/api/v1/scores", json=event("t9"), headers=server)
        assert single.status_code == 202

        anonymous = [
            (await client.post("/api/v1/scores", json=event("a"))).status_code for _ in range(3)
        ]
        assert anonymous == [401, 401, 429]


def _fail_open_count() -> float:
    value = REGISTRY.get_sample_value("podium_rate_limit_fail_open_total", {"service": "ingest"})
    return value or 0.0


async def test_limiter_fails_open_when_redis_is_down(
    settings_factory: SettingsFactory,
    settings: PlatformSettings,
    token_for: TokenFor,
    tmp_path: Path,
) -> None:
    port = free_port()
    private = start_embedded_redis(tmp_path, "127.0.0.1", port, log_path=tmp_path / "redis.log")
    try:
        isolated = settings_factory(
            redis_url=f"redis://127.0.0.1:{port}/0", rate_player_per_s=SLOW, rate_player_burst=1
        )
        async with (
            running_app(create_app(isolated), isolated) as base_url,
            httpx.AsyncClient(base_url=base_url, timeout=20) as client,
        ):
            admin = bearer(token_for("ops", "admin"))
            await client.post(
                "/api/v1/competitions", json={"id": "c1", "name": "Cup"}, headers=admin
            )
            player = bearer(token_for("u1", "scores:write"))
            assert (
                await client.post("/api/v1/scores", json=event("e1"), headers=player)
            ).status_code == 202
            assert (
                await client.post("/api/v1/scores", json=event("e2"), headers=player)
            ).status_code == 429
            private.stop()
            before = _fail_open_count()
            for index in range(3):
                response = await client.post(
                    "/api/v1/scores", json=event(f"open{index}"), headers=player
                )
                assert response.status_code == 202, response.text
                assert "ratelimit-limit" not in response.headers
            assert _fail_open_count() >= before + 3
            metrics = (await client.get("/metrics")).text
            assert "podium_rate_limit_fail_open_total" in metrics
            assert (await client.get("/health/live")).status_code == 200
    finally:
        private.stop()
