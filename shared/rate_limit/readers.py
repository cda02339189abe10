"""Read limits: the query API's requests and the notifier's WebSocket connects (issue #15).

A caller with a valid bearer token is limited per subject; a caller without one, or with one
that does not verify (guessing tokens costs the address, as in ingest), per client address,
``X-Forwarded-For`` believed only from ``PODIUM_TRUSTED_PROXIES``
(:func:`shared.http.client_ip.client_ip`). The buckets are in Redis, shared by every replica,
and spent through local leases (:class:`~shared.rate_limit.lease.LeasingRateLimiter`), so a
page served from the hot cache does not pay a Redis round trip per request: one check per
lease (up to ``PODIUM_RATE_LEASE_MAX_TOKENS`` requests within ``PODIUM_RATE_LEASE_MS``) per
bucket and replica. Redis down: the limiter fails open (a metric and a warning), reads go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.auth import bearer_token
from shared.errors import AuthenticationError
from shared.http.client_ip import IPNetwork, client_ip, parse_networks
from shared.http.errors import podium_error_handler
from shared.rate_limit.buckets import RateDecision, RateLimiter, RatePolicy
from shared.rate_limit.lease import LeasingRateLimiter
from shared.rate_limit.policy import RateLimitExceededError, enforce_rate_limit
from shared.redis_client import RedisClient
from shared.settings import CommonSettings
from shared.token_cache import verify_token_cached

EXEMPT_PATHS = ("/health/", "/metrics")
"""Probes and scrapes are not charged: a limited probe would take a healthy pod out."""


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """The two buckets of a reading service and how a caller is mapped to one."""

    limiter: RateLimiter
    settings: CommonSettings
    subject_policy: RatePolicy
    anonymous_policy: RatePolicy
    trusted_proxies: list[IPNetwork]

    @classmethod
    def open(
        cls,
        redis: RedisClient,
        settings: CommonSettings,
        *,
        service: str,
        subject_policy: RatePolicy,
        anonymous_policy: RatePolicy,
    ) -> ReadLimits:
        """Limits over ``redis`` with the common lease and trusted-proxy settings."""
        limiter = LeasingRateLimiter(
            redis,
            settings.redis_key_prefix,
            service=service,
            max_tokens=settings.rate_lease_max_tokens,
            lease_s=settings.rate_lease_ms / 1000,
            check_timeout_s=settings.rate_check_timeout_s,
        )
        return cls(
            limiter,
            settings,
            subject_policy,
            anonymous_policy,
            parse_networks(settings.trusted_proxies),
        )

    def bucket(self, connection: HTTPConnection, token: str | None) -> tuple[RatePolicy, str]:
        """The policy and subject a caller is charged to (see the module docstring)."""
        if token:
            try:
                principal = verify_token_cached(self.settings, token)
            except AuthenticationError:
                pass
            else:
                return self.subject_policy, principal.subject
        return self.anonymous_policy, client_ip(connection, self.trusted_proxies)

    async def charge(self, connection: HTTPConnection, token: str | None) -> RateDecision:
        """Take one token from the caller's bucket or raise :class:`RateLimitExceededError`."""
        policy, subject = self.bucket(connection, token)
        return await enforce_rate_limit(self.limiter, policy, subject)


class ReadRateLimitMiddleware:
    """Charges every HTTP request but probes and scrapes to the app's :class:`ReadLimits`
    (``app.state.read_limits``, put there by the lifespan) and answers 429 with
    ``Retry-After``, the ``RateLimit-*`` headers and the JSON error body when refused.

    Pure ASGI and innermost, so a refusal still gets the edge's request id and security
    headers. Before the lifespan has run (no ``read_limits`` yet) nothing is charged.
    """

    def __init__(self, app: ASGIApp, exempt_paths: Sequence[str] = EXEMPT_PATHS) -> None:
        self.app = app
        self.exempt_paths = tuple(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt_paths):
            await self.app(scope, receive, send)
            return
        limits: ReadLimits | None = getattr(scope["app"].state, "read_limits", None)
        if limits is not None:
            request = Request(scope, receive)
            try:
                token = bearer_token(request.headers.get("authorization"))
            except AuthenticationError:
                token = None  # a malformed header: charged to the address, 401 by the route
            try:
                await limits.charge(request, token)
            except RateLimitExceededError as refused:
                response = await podium_error_handler(request, refused)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
