"""JWT issue and verification: rotation, expiry, algorithm confusion, missing claims."""

from __future__ import annotations

import base64
import time

import jwt
import orjson
import pytest

from shared.auth import Principal, Scope, issue_token, verify_token
from shared.errors import AuthenticationError, PermissionDeniedError
from shared.settings import CommonSettings

OLD = "old-secret-0123456789-0123456789-0123"
NEW = "new-secret-0123456789-0123456789-0123"


def _settings(*secrets: str) -> CommonSettings:
    return CommonSettings(env="test", jwt_secrets=list(secrets))  # type: ignore[arg-type]


def test_round_trip() -> None:
    settings = _settings(NEW)
    principal = verify_token(settings, issue_token(settings, "alice", ["scores:write"]))
    assert principal == Principal("alice", frozenset({"scores:write"}))


def test_rotation_old_tokens_verify_while_listed_then_not() -> None:
    old_token = issue_token(_settings(OLD), "alice", ["scores:write"])
    assert verify_token(_settings(NEW, OLD), old_token).subject == "alice"
    with pytest.raises(AuthenticationError, match="signature"):
        verify_token(_settings(NEW), old_token)


def test_new_tokens_are_signed_with_the_first_secret() -> None:
    token = issue_token(_settings(NEW, OLD), "alice", ["admin"])
    assert verify_token(_settings(NEW), token).subject == "alice"


def test_expired_token_is_rejected() -> None:
    settings = _settings(NEW)
    claims = {"sub": "a", "scope": "admin", "iat": 1, "exp": int(time.time()) - 60, "iss": "podium"}
    with pytest.raises(AuthenticationError, match="expired"):
        verify_token(settings, jwt.encode(claims, NEW, algorithm="HS256"))


def test_not_yet_valid_token_is_rejected() -> None:
    now = int(time.time())
    claims = {
        "sub": "a",
        "scope": "admin",
        "iat": now,
        "nbf": now + 600,
        "exp": now + 900,
        "iss": "podium",
    }
    with pytest.raises(AuthenticationError, match="not yet valid"):
        verify_token(_settings(NEW), jwt.encode(claims, NEW, algorithm="HS256"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_alg_none_is_rejected() -> None:
    now = int(time.time())
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    payload = _b64(
        orjson.dumps({"sub": "a", "scope": "admin", "iat": now, "exp": now + 60, "iss": "podium"})
    )
    with pytest.raises(AuthenticationError, match="algorithm"):
        verify_token(_settings(NEW), f"{header}.{payload}.")


def test_other_hmac_algorithm_is_rejected() -> None:
    now = int(time.time())
    claims = {"sub": "a", "scope": "admin", "iat": now, "exp": now + 60, "iss": "podium"}
    long_secret = NEW * 2
    with pytest.raises(AuthenticationError, match="algorithm"):
        verify_token(_settings(long_secret), jwt.encode(claims, long_secret, algorithm="HS512"))


@pytest.mark.parametrize("missing", ["sub", "scope", "exp", "iat", "iss"])
def test_missing_claim_is_rejected(missing: str) -> None:
    now = int(time.time())
    claims = {"sub": "a", "scope": "admin", "iat": now, "exp": now + 60, "iss": "podium"}
    del claims[missing]
    with pytest.raises(AuthenticationError):
        verify_token(_settings(NEW), jwt.encode(claims, NEW, algorithm="HS256"))


def test_garbage_is_rejected() -> None:
    with pytest.raises(AuthenticationError):
        verify_token(_settings(NEW), "not-a-token")


def test_unknown_scope_cannot_be_issued() -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        issue_token(_settings(NEW), "a", ["root"])


def test_scope_rules() -> None:
    player = Principal("alice", frozenset({"scores:write"}))
    server = Principal("game", frozenset({"scores:write:any"}))
    admin = Principal("ops", frozenset({"admin"}))
    assert player.may_write_for("alice")
    assert not player.may_write_for("bob")
    assert server.may_write_for("bob")
    assert admin.has(Scope.LEADERBOARDS_READ)
    with pytest.raises(PermissionDeniedError):
        player.require(Scope.ADMIN)
