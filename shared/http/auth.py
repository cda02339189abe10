"""Authenticating HTTP requests with the bearer token."""

from __future__ import annotations

from starlette.requests import HTTPConnection

from shared.auth import Principal, bearer_token
from shared.errors import AuthenticationError
from shared.settings import CommonSettings
from shared.token_cache import verify_token_cached


def optional_principal(connection: HTTPConnection, settings: CommonSettings) -> Principal | None:
    """The verified caller, or None when no token was sent (a bad token is still a 401).

    Verified tokens are cached until they expire (:mod:`shared.token_cache`)."""
    token = bearer_token(connection.headers.get("authorization"))
    if token is None:
        return None
    return verify_token_cached(settings, token)


def require_principal(connection: HTTPConnection, settings: CommonSettings) -> Principal:
    """The verified caller; 401 when there is no token or it does not verify."""
    principal = optional_principal(connection, settings)
    if principal is None:
        raise AuthenticationError("a bearer token is required")
    return principal
