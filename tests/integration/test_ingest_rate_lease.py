"""Leased rate-limit tokens: fewer Redis checks, and never more grants than the bucket holds."""

from __future__ import annotations

import asyncio

from podium.settings import PlatformSettings
from shared.rate_limit.buckets import RatePolicy
from shared.rate_limit.lease import LeasingRateLimiter
from shared.redis_client import create_redis

SLOW = 0.001  # tokens per second: no refill worth a token during a test


async def _bucket_tokens(limiter: LeasingRateLimiter, policy: RatePolicy, subject: str) -> float:
    raw = await limiter._redis.hget(limiter.bucket_key(policy, subject), "tokens")
    assert raw is not None
    return float(raw)


async def test_leases_spend_locally_and_redis_counts_every_granted_token(
    settings: PlatformSettings,
) -> None:
    client = create_redis(settings)
    try:
        limiter = LeasingRateLimiter(
            client, settings.redis_key_prefix, service="test", max_tokens=8, lease_s=30.0
        )
        policy = RatePolicy("server", SLOW, 1000)
        for _ in range(40):
            assert (await limiter.acquire(policy, "s1")).allowed
        # 40 grants took 5 Redis checks of 1 + 8 leased tokens: the bucket paid for all 45
        taken = policy.burst - await _bucket_tokens(limiter, policy, "s1")
        assert 40 <= taken <= 40 + 8
        assert round(taken) == 45
        # a cost above the lease size always goes to Redis, whole or not at all
        assert (await limiter.acquire(policy, "s1", 100)).allowed
        assert round(policy.burst - await _bucket_tokens(limiter, policy, "s1")) == 145
    finally:
        await client.aclose()


async def test_two_replicas_never_grant_more_than_the_burst(settings: PlatformSettings) -> None:
    client = create_redis(settings)
    try:
        replicas = [
            LeasingRateLimiter(
                client, settings.redis_key_prefix, service="test", max_tokens=4, lease_s=30.0
            )
            for _ in range(2)
        ]
        policy = RatePolicy("player", SLOW, 64)  # 64 // 16 = leases of 4
        decisions = await asyncio.gather(
            *(replicas[i % 2].acquire(policy, "p1") for i in range(200))
        )
        granted = sum(decision.allowed for decision in decisions)
        # leases only while the bucket stays over half full: the rest is checked in Redis
        assert granted <= 64
        assert granted >= 64 - 2 * 4  # at most one unspent lease per replica is held back
        assert any(not decision.allowed for decision in decisions)
    finally:
        await client.aclose()


async def test_small_buckets_are_never_leased(settings: PlatformSettings) -> None:
    client = create_redis(settings)
    try:
        limiter = LeasingRateLimiter(
            client, settings.redis_key_prefix, service="test", max_tokens=32, lease_s=30.0
        )
        policy = RatePolicy("player", SLOW, 4)
        decisions = [await limiter.acquire(policy, "p2") for _ in range(6)]
        assert [d.allowed for d in decisions] == [True] * 4 + [False] * 2
        assert [d.remaining for d in decisions[:4]] == [3, 2, 1, 0]
    finally:
        await client.aclose()


async def test_concurrent_misses_share_one_refill(settings: PlatformSettings) -> None:
    """64 requests arriving together cost a few Redis checks, not one each (the herd that
    sent about every second request to Redis when a lease ran out)."""
    client = create_redis(settings)
    try:
        limiter = LeasingRateLimiter(
            client, settings.redis_key_prefix, service="test", max_tokens=32, lease_s=30.0
        )
        calls = 0
        script = limiter._script

        async def counted(*args: object, **kwargs: object) -> object:
            nonlocal calls
            calls += 1
            return await script(*args, **kwargs)  # type: ignore[arg-type]

        limiter._script = counted  # type: ignore[assignment]
        policy = RatePolicy("server", SLOW, 100_000)
        decisions = await asyncio.gather(*(limiter.acquire(policy, "s3") for _ in range(64)))
        assert all(decision.allowed for decision in decisions)
        # each refill takes 1 + 32 tokens: two cover 64 requests; a waiter whose refill ran
        # dry waits for the next one (bounded), so a handful of checks at most
        assert calls <= 4
        taken = policy.burst - await _bucket_tokens(limiter, policy, "s3")
        assert 64 <= round(taken) <= 64 + 32
    finally:
        await client.aclose()
