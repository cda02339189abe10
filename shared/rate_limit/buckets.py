"""Token-bucket rate limits kept in Redis, shared by every replica of a service.

One Lua script reads, refills and takes from a bucket atomically, with Redis's own clock, so
replicas with skewed clocks still agree. Each bucket is one hash (``tokens``, ``ts``) that
expires once it would be full again, so idle callers cost no memory.

The limiter fails open: when Redis errors or times out, the request is allowed, a metric is
incremented and a warning is logged, and Redis is left alone for a short back-off so an
outage does not add a timeout to every request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from prometheus_client import Counter
from redis.exceptions import RedisError

from shared.redis_client import RedisClient
from shared.redis_keys import rate_limit_key

logger = logging.getLogger(__name__)

RATE_LIMITED = Counter(
    "podium_rate_limited_total",
    "Requests refused by a rate limit, by service and policy.",
    ["service", "policy"],
)
RATE_LIMIT_FAIL_OPEN = Counter(
    "podium_rate_limit_fail_open_total",
    "Rate-limit checks allowed without Redis because it failed, by service.",
    ["service"],
)

# KEYS[1] bucket; ARGV rate/s, burst, cost and (optional) lease. Takes cost (or refuses);
# then takes up to `lease` more only while at least half the burst would remain.
# Returns {allowed, tokens left, retry after s, leased}.
# Floats travel as strings: Redis truncates Lua numbers to integers in replies.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local lease = tonumber(ARGV[4]) or 0
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local last = tonumber(state[2])
if tokens == nil or last == nil then
  tokens = burst
  last = now
end
if now > last then
  tokens = math.min(burst, tokens + (now - last) * rate)
  last = now
end
local allowed = 0
local retry_after = 0
local leased = 0
if cost <= tokens then
  tokens = tokens - cost
  allowed = 1
  leased = math.max(0, math.min(lease, math.floor(tokens - burst / 2)))
  tokens = tokens - leased
else
  retry_after = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(last))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(retry_after), leased}
"""


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """A bucket shape: ``burst`` tokens, refilled at ``per_s`` tokens per second."""

    name: str
    per_s: float
    burst: int


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one check.

    ``remaining`` is the whole tokens left; ``reset_s`` how long until the bucket is full
    again; ``retry_after_s`` how long until the refused cost would fit (0 when allowed).
    ``enforced`` is False when the limiter failed open (Redis unavailable).
    """

    policy: RatePolicy
    allowed: bool
    remaining: int
    reset_s: float
    retry_after_s: float
    enforced: bool = True

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit/Remaining/Reset`` (and ``Retry-After`` when refused)."""
        if not self.enforced:
            return {}
        headers = {
            "RateLimit-Limit": str(self.policy.burst),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_s)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after_s)))
        return headers

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """:meth:`headers` as ASGI header pairs (lower-case names), for a hot endpoint that
        builds its response without Starlette's header encoding."""
        return [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers().items()
        ]


@dataclass(frozen=True, slots=True)
class BucketReply:
    """What the bucket script answered: allowed, tokens left, retry after, tokens leased."""

    allowed: bool
    tokens: float
    retry_after_s: float
    leased: int


class RateLimiter:
    """Checks and takes tokens from Redis buckets (:func:`shared.redis_keys.rate_limit_key`).

    Parameters
    ----------
    redis:
        The shared Redis client (its socket timeout bounds each check).
    key_prefix:
        Prepended to every bucket key (``PODIUM_REDIS_KEY_PREFIX``).
    service:
        The metric label of the owning service.
    failure_backoff_s:
        After a Redis failure, checks fail open without calling Redis for this long.
    check_timeout_s:
        When set, the longest one check waits (a slower one is cancelled and fails open);
        otherwise the client's socket timeout bounds it.
    """

    def __init__(
        self,
        redis: RedisClient,
        key_prefix: str,
        *,
        service: str,
        failure_backoff_s: float = 1.0,
        check_timeout_s: float | None = None,
    ) -> None:
        self._redis = redis
        self._key_prefix = key_prefix
        self._service = service
        self._failure_backoff_s = failure_backoff_s
        self._check_timeout_s = check_timeout_s
        self._skip_until = 0.0
        self._script = redis.register_script(_BUCKET_SCRIPT)

    def bucket_key(self, policy: RatePolicy, subject: str) -> str:
        """The Redis key of ``subject``'s bucket under ``policy``."""
        return rate_limit_key(self._key_prefix, policy.name, subject)

    async def acquire(self, policy: RatePolicy, subject: str, cost: int = 1) -> RateDecision:
        """Take ``cost`` tokens from ``subject``'s bucket if it holds them; never raises.

        A cost above the burst can never fit; it is refused with the time a full bucket
        would need, so callers should bound costs (e.g. the batch size) below the burst.
        """
        reply = await self._take(self.bucket_key(policy, subject), policy, cost)
        if reply is None:
            return self._fail_open(policy)
        return self._bucket_decision(policy, reply)

    async def _take(
        self, key: str, policy: RatePolicy, cost: int, lease: int = 0
    ) -> BucketReply | None:
        """Run the bucket script; None when Redis failed (the caller fails open)."""
        if time.monotonic() < self._skip_until:
            return None
        try:
            check = self._script(keys=[key], args=[repr(policy.per_s), policy.burst, cost, lease])
            if self._check_timeout_s is not None:
                check = asyncio.wait_for(check, self._check_timeout_s)
            allowed, tokens_text, retry_text, leased = await check
        except (RedisError, OSError, TimeoutError) as error:
            self._skip_until = time.monotonic() + self._failure_backoff_s
            logger.warning(
                "rate limiter failing open for %.1f s: Redis error %s: %s",
                self._failure_backoff_s,
                type(error).__name__,
                error,
            )
            return None
        reply = BucketReply(bool(int(allowed)), float(tokens_text), float(retry_text), int(leased))
        if not reply.allowed:
            RATE_LIMITED.labels(self._service, policy.name).inc()
        return reply

    @staticmethod
    def _bucket_decision(policy: RatePolicy, reply: BucketReply) -> RateDecision:
        return RateDecision(
            policy=policy,
            allowed=reply.allowed,
            remaining=max(0, math.floor(reply.tokens)),
            reset_s=max(0.0, (policy.burst - reply.tokens) / policy.per_s),
            retry_after_s=reply.retry_after_s,
        )

    def _fail_open(self, policy: RatePolicy) -> RateDecision:
        RATE_LIMIT_FAIL_OPEN.labels(self._service).inc()
        return RateDecision(
            policy=policy,
            allowed=True,
            remaining=policy.burst,
            reset_s=0.0,
            retry_after_s=0.0,
            enforced=False,
        )
