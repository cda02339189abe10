"""Verified bearer tokens remembered until they expire, so a hot caller's token is checked
once, not on every request (HS256 verification is a large share of a small request's CPU).

Only tokens that verified are kept, each with its own ``exp``/``nbf``: a cached token stops
being accepted at the same instant a fresh verification would refuse it. Entries are tied to
the secrets, issuer and leeway they were verified with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from shared.auth import Principal, verify_token
from shared.settings import CommonSettings

DEFAULT_MAX_TOKENS = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    not_before: float
    expires_at: float
    fingerprint: tuple[object, ...]


def _fingerprint(settings: CommonSettings) -> tuple[object, ...]:
    return (tuple(settings.verification_secrets), settings.jwt_issuer, settings.jwt_leeway_s)


class VerifiedTokenCache:
    """Token → principal for tokens that verified, bounded to ``max_tokens`` entries."""

    def __init__(
        self,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_tokens = max_tokens
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def verify(self, settings: CommonSettings, token: str) -> Principal:
        """The token's principal; raises ``AuthenticationError`` exactly as
        :func:`shared.auth.verify_token` would for this token now."""
        entry = self._entries.get(token)
        now = self._clock()
        if entry is not None:
            leeway = settings.jwt_leeway_s
            if (
                entry.fingerprint == _fingerprint(settings)
                and entry.not_before - leeway <= now <= entry.expires_at + leeway
            ):
                return entry.principal
            del self._entries[token]
        principal = verify_token(settings, token)  # raises for every refusal
        claims = jwt.decode(token, options={"verify_signature": False})
        if len(self._entries) >= self._max_tokens:
            # insertion order: the oldest token goes first
            del self._entries[next(iter(self._entries))]
        self._entries[token] = _Entry(
            principal=principal,
            # PyJWT refuses a token before its nbf and before its iat
            not_before=max(float(claims.get("nbf", 0)), float(claims.get("iat", 0))),
            expires_at=float(claims["exp"]),
            fingerprint=_fingerprint(settings),
        )
        return principal

    def __len__(self) -> int:
        return len(self._entries)


_process_cache = VerifiedTokenCache()


def verify_token_cached(settings: CommonSettings, token: str) -> Principal:
    """:func:`shared.auth.verify_token` through this process's cache."""
    return _process_cache.verify(settings, token)
