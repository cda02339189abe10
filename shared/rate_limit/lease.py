"""Rate limits with local token leases: one Redis check per several requests.

:class:`LeasingRateLimiter` is a :class:`~.buckets.RateLimiter` whose Redis check
may take a few tokens more than the request costs (a *lease*) and spend them locally for
``lease_s``. The extra tokens are taken from the shared bucket atomically, so replicas can
never grant more than the bucket holds: the limit holds exactly, and the documented
tolerance is the other way round: up to ``max_tokens`` per replica per ``lease_s`` are held
early (and wasted if unspent), so a replica may refuse slightly before the bucket is truly
empty. To keep that invisible, a lease is only taken while the bucket stays over half full
after it and when the burst is at least :data:`MIN_BURST_PER_LEASE` leases; small buckets
(e.g. a player's burst of 20) are checked in Redis on every request, as before.

Concurrent requests that find the lease spent wait for the one refill already in flight for
their bucket and spend from it, instead of each asking Redis: with 64 requests in flight a
spent lease used to send about every second request to Redis (a Redis round trip costs more
CPU than the rest of the check). A waiter waits at most :data:`MAX_REFILL_WAITS` refills, and
not at all once a refill brought no lease (the bucket is under half full or refusing): from
then on each request is checked in Redis on its own, so a refusal is exact.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from shared.rate_limit.buckets import BucketReply, RateDecision, RateLimiter, RatePolicy
from shared.redis_client import RedisClient

logger = logging.getLogger(__name__)

MIN_BURST_PER_LEASE = 16
MAX_LEASED_SUBJECTS = 10_000
MAX_REFILL_WAITS = 4


@dataclass(slots=True)
class _Lease:
    tokens: int
    bucket_tokens: float
    expires_at: float


class _Refill:
    """One lease request in flight for a bucket; waiters learn whether it brought a lease."""

    __slots__ = ("done", "leased")

    def __init__(self) -> None:
        # an Event, not a future: a waiter's cancellation must not cancel the refill
        self.done = asyncio.Event()
        self.leased = False


class LeasingRateLimiter(RateLimiter):
    """A :class:`RateLimiter` that spends small leases of already-taken tokens locally."""

    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str,
        *,
        service: str,
        max_tokens: int,
        lease_s: float,
        failure_backoff_s: float = 1.0,
        check_timeout_s: float | None = None,
    ) -> None:
        super().__init__(
            redis,
            key_prefix,
            service=service,
            failure_backoff_s=failure_backoff_s,
            check_timeout_s=check_timeout_s,
        )
        self._max_tokens = max_tokens
        self._lease_s = lease_s
        self._leases: dict[str, _Lease] = {}
        self._refills: dict[str, _Refill] = {}

    def _lease_size(self, policy: RatePolicy, cost: int) -> int:
        size = min(self._max_tokens, policy.burst // MIN_BURST_PER_LEASE)
        return size if cost <= size else 0

    async def acquire(self, policy: RatePolicy, subject: str, cost: int = 1) -> RateDecision:
        """Spend ``cost`` from a live local lease, else take it (plus a lease) from Redis."""
        lease_size = self._lease_size(policy, cost)
        if lease_size <= 0:
            return await super().acquire(policy, subject, cost)
        key = self.bucket_key(policy, subject)
        for _ in range(MAX_REFILL_WAITS):
            decision = self._spend(key, policy, cost)
            if decision is not None:
                return decision
            refill = self._refills.get(key)
            if refill is None:
                return await self._refill(key, policy, cost, lease_size)
            await refill.done.wait()
            if not refill.leased:
                break  # no lease to share: the bucket is low or Redis failed; check alone
        decision = self._spend(key, policy, cost)
        if decision is not None:
            return decision
        return self._reply_decision(policy, await self._take(key, policy, cost, 0))

    def _spend(self, key: str, policy: RatePolicy, cost: int) -> RateDecision | None:
        """Take ``cost`` from the bucket's live lease; None when it has too few tokens."""
        lease = self._leases.get(key)
        if lease is None or lease.tokens < cost or lease.expires_at <= time.monotonic():
            return None
        lease.tokens -= cost
        return self._decision(policy, lease.bucket_tokens + lease.tokens, 0.0)

    async def _refill(
        self, key: str, policy: RatePolicy, cost: int, lease_size: int
    ) -> RateDecision:
        """Take ``cost`` plus a lease from Redis while the bucket's waiters wait for it."""
        refill = self._refills[key] = _Refill()
        try:
            reply = await self._take(key, policy, cost, lease_size)
            if reply is not None and reply.allowed and reply.leased > 0:
                self._store(
                    key, _Lease(reply.leased, reply.tokens, time.monotonic() + self._lease_s)
                )
                refill.leased = True
        finally:
            del self._refills[key]
            refill.done.set()
        return self._reply_decision(policy, reply)

    def _reply_decision(self, policy: RatePolicy, reply: BucketReply | None) -> RateDecision:
        if reply is None:
            return self._fail_open(policy)
        if not reply.allowed:
            return self._bucket_decision(policy, reply)
        return self._decision(policy, reply.tokens + reply.leased, 0.0)

    def _store(self, key: str, lease: _Lease) -> None:
        if len(self._leases) >= MAX_LEASED_SUBJECTS:
            now = time.monotonic()
            self._leases = {k: v for k, v in self._leases.items() if v.expires_at > now}
            if len(self._leases) >= MAX_LEASED_SUBJECTS:
                self._leases.clear()
        previous = self._leases.get(key)
        if previous is not None and previous.expires_at > time.monotonic():
            lease.tokens += previous.tokens  # still spendable: they were taken from Redis
        self._leases[key] = lease

    @staticmethod
    def _decision(policy: RatePolicy, tokens: float, retry_after_s: float) -> RateDecision:
        return RateDecision(
            policy=policy,
            allowed=True,
            remaining=max(0, math.floor(tokens)),
            reset_s=max(0.0, (policy.burst - tokens) / policy.per_s),
            retry_after_s=retry_after_s,
        )
