"""JWT authentication: HS256 tokens, a list of secrets for rotation, and scopes.

The first secret of ``PODIUM_JWT_SECRETS`` signs; every secret in the list verifies, so a key
can be rotated by prepending the new one and dropping the old one after the longest token
lifetime. Only HS256 is accepted: ``alg: none`` and every other algorithm are refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import jwt

from shared.errors import AuthenticationError, PermissionDeniedError
from shared.settings import CommonSettings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "scope", "exp", "iat")


class Scope(StrEnum):
    """What a token allows."""

    SCORES_WRITE = "scores:write"
    SCORES_WRITE_ANY = "scores:write:any"
    LEADERBOARDS_READ = "leaderboards:read"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller: its subject and scopes."""

    subject: str
    scopes: frozenset[str]

    def has(self, scope: Scope) -> bool:
        """True when the token carries ``scope`` (``admin`` implies every scope)."""
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes

    def require(self, scope: Scope) -> None:
        """Raise 403 unless the token carries ``scope``."""
        if not self.has(scope):
            raise PermissionDeniedError(
                f"this action needs the {scope.value!r} scope",
                details={"required_scope": scope.value},
            )

    def may_write_for(self, user_id: str) -> bool:
        """Whether this caller may post scores for ``user_id``."""
        if self.has(Scope.SCORES_WRITE_ANY):
            return True
        return Scope.SCORES_WRITE.value in self.scopes and user_id == self.subject


def issue_token(
    settings: CommonSettings, subject: str, scopes: list[str], *, ttl_s: int | None = None
) -> str:
    """Sign a token for ``subject`` with ``scopes``, valid for ``ttl_s`` seconds."""
    unknown = sorted(set(scopes) - {scope.value for scope in Scope})
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
    now = int(time.time())
    claims = {
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + (ttl_s if ttl_s is not None else settings.jwt_default_ttl_s),
        "iss": settings.jwt_issuer,
    }
    return jwt.encode(claims, settings.signing_secret, algorithm=ALGORITHM)


def verify_token(settings: CommonSettings, token: str) -> Principal:
    """Verify ``token`` against every configured secret; raise 401 if none accepts it."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as error:
        raise AuthenticationError("malformed token") from error
    if header.get("alg") != ALGORITHM:
        raise AuthenticationError(f"token algorithm must be {ALGORITHM}")
    last_error: jwt.PyJWTError | None = None
    for secret in settings.verification_secrets:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=[ALGORITHM],
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                options={"require": [*REQUIRED_CLAIMS, "iss"]},
            )
        except jwt.InvalidSignatureError as error:
            last_error = error
            continue
        except jwt.ExpiredSignatureError as error:
            raise AuthenticationError("token expired") from error
        except jwt.ImmatureSignatureError as error:
            raise AuthenticationError("token not yet valid") from error
        except jwt.PyJWTError as error:
            raise AuthenticationError(f"invalid token: {error}") from error
        return _principal_from_claims(claims)
    raise AuthenticationError("token signature does not verify") from last_error


def _principal_from_claims(claims: dict[str, object]) -> Principal:
    subject, scope = claims.get("sub"), claims.get("scope")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("token claim 'sub' must be a non-empty string")
    if not isinstance(scope, str):
        raise AuthenticationError("token claim 'scope' must be a space-separated string")
    return Principal(subject=subject, scopes=frozenset(scope.split()))


def bearer_token(authorization_header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or None when there is none."""
    if not authorization_header:
        return None
    scheme, _, token = authorization_header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("Authorization header must be 'Bearer <token>'")
    return token.strip()
