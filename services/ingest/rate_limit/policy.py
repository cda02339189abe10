"""Rate limits at the HTTP edge: which bucket a caller uses and how a refusal is answered.

Authenticated callers are limited per subject by what their token allows (players,
trusted servers, admins); callers without a valid token are limited per client IP.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ingest.rate_limit.buckets import RateDecision, RateLimiter, RatePolicy
from services.ingest.settings import IngestSettings
from shared.errors import RateLimitedError


@dataclass(frozen=True, slots=True)
class RatePolicies:
    """The bucket shapes configured by ``PODIUM_RATE_*``."""

    player: RatePolicy
    server: RatePolicy
    admin: RatePolicy
    anonymous: RatePolicy

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> RatePolicies:
        """Read the four policies from ``settings``."""
        return cls(
            player=RatePolicy("player", settings.rate_player_per_s, settings.rate_player_burst),
            server=RatePolicy("server", settings.rate_server_per_s, settings.rate_server_burst),
            admin=RatePolicy("admin", settings.rate_admin_per_s, settings.rate_admin_burst),
            anonymous=RatePolicy(
                "anonymous", settings.rate_anonymous_per_s, settings.rate_anonymous_burst
            ),
        )


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
