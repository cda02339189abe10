"""The verified-token cache (a bench-driven optimisation): it must refuse exactly what
``verify_token`` refuses — expiry, rotation, bad signatures — while skipping re-verification."""

from __future__ import annotations

import time

import pytest

from shared.auth import issue_token
from shared.errors import AuthenticationError
from shared.settings import CommonSettings
from shared.token_cache import VerifiedTokenCache

OLD = "old-secret-0123456789-0123456789-0123"
NEW = "new-secret-0123456789-0123456789-0123"


def _settings(*secrets: str, leeway_s: int = 0) -> CommonSettings:
    return CommonSettings(env="test", jwt_secrets=list(secrets), jwt_leeway_s=leeway_s)  # type: ignore[arg-type]


def test_a_verified_token_is_served_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(NEW)
    token = issue_token(settings, "alice", ["scores:write"])
    cache = VerifiedTokenCache()
    assert cache.verify(settings, token).subject == "alice"
    calls = []
    monkeypatch.setattr("shared.token_cache.verify_token", lambda *args: calls.append(args) or None)
    assert cache.verify(settings, token).subject == "alice"
    assert calls == []


def test_a_cached_token_is_refused_once_it_expires() -> None:
    settings = _settings(NEW)
    token = issue_token(settings, "alice", ["scores:write"], ttl_s=60)
    now = [time.time()]
    cache = VerifiedTokenCache(clock=lambda: now[0])
    cache.verify(settings, token)
    now[0] += 120  # our clock passed exp: the entry is dropped and PyJWT decides (still valid
    # by the real clock, so it verifies again) — the cache never extends a token's life
    cache.verify(settings, token)
    expired = issue_token(settings, "bob", ["scores:write"], ttl_s=1)
    cache.verify(settings, expired)
    time.sleep(2.1)
    with pytest.raises(AuthenticationError, match="expired"):
        cache.verify(settings, expired)
    assert len(cache) == 1  # alice re-verified and cached again; bob dropped


def test_removing_a_secret_refuses_cached_tokens_signed_with_it() -> None:
    cache = VerifiedTokenCache()
    token = issue_token(_settings(OLD), "alice", ["scores:write"])
    assert cache.verify(_settings(NEW, OLD), token).subject == "alice"
    with pytest.raises(AuthenticationError, match="signature"):
        cache.verify(_settings(NEW), token)


def test_bad_tokens_are_never_cached() -> None:
    settings = _settings(NEW)
    cache = VerifiedTokenCache()
    forged = issue_token(_settings(OLD), "mallory", ["admin"])
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            cache.verify(settings, forged)
    assert len(cache) == 0


def test_the_cache_is_bounded() -> None:
    settings = _settings(NEW)
    cache = VerifiedTokenCache(max_tokens=3)
    for index in range(5):
        cache.verify(settings, issue_token(settings, f"user{index}", ["scores:write"]))
    assert len(cache) == 3
