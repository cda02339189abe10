"""Enforcing a rate limit: take tokens or refuse with a 429 that says when to retry."""

from __future__ import annotations

from shared.errors import RateLimitedError
from shared.rate_limit.buckets import RateDecision, RateLimiter, RatePolicy


class RateLimitExceededError(RateLimitedError):
    """429 carrying ``Retry-After`` and the ``RateLimit-*`` headers of the refused bucket."""

    def __init__(self, decision: RateDecision) -> None:
        super().__init__(
            f"rate limit exceeded; retry in {decision.retry_after_s:.2f} s",
            retry_after_s=decision.retry_after_s,
            details={
                "policy": decision.policy.name,
                "limit": decision.policy.burst,
                "per_s": decision.policy.per_s,
                "retry_after_s": round(decision.retry_after_s, 3),
            },
        )
        self.headers = decision.headers()


async def enforce_rate_limit(
    limiter: RateLimiter, policy: RatePolicy, subject: str, cost: int = 1
) -> RateDecision:
    """Take ``cost`` tokens from ``subject``'s bucket or raise :class:`RateLimitExceededError`.

    The returned decision's :meth:`~.buckets.RateDecision.headers` belong on the
    successful response.
    """
    decision = await limiter.acquire(policy, subject, cost)
    if not decision.allowed:
        raise RateLimitExceededError(decision)
    return decision
