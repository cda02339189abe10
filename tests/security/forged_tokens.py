"""Hand-made JWTs for the attack suite: unsigned, wrong algorithm, wrong key, bad claims.

Built byte by byte (base64url of JSON, then a signature) rather than with PyJWT where PyJWT
would refuse to make the attack token at all (HMAC with a PEM key, a list-valued header).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
from pathlib import Path
from typing import Any


def b64url(raw: bytes) -> str:
    """Unpadded base64url, as JWS uses."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signing_input(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """``base64url(header).base64url(claims)``."""

    def encode(part: dict[str, Any]) -> str:
        return b64url(json.dumps(part, separators=(",", ":")).encode())

    return f"{encode(header)}.{encode(claims)}"


def hs256(claims: dict[str, Any], secret: bytes, **header: Any) -> str:
    """An HS256 token over ``claims`` with ``secret`` (any bytes, a PEM key included)."""
    return hmac_token(claims, secret, "HS256", **header)


def hmac_token(claims: dict[str, Any], secret: bytes, alg: str, **header: Any) -> str:
    """An HMAC token (``HS256``, ``HS384`` or ``HS512``) over ``claims`` with ``secret``."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    message = signing_input({"alg": alg, "typ": "JWT", **header}, claims)
    signature = hmac.new(secret, message.encode(), digest).digest()
    return f"{message}.{b64url(signature)}"


def unsigned(claims: dict[str, Any], alg: str = "none") -> str:
    """An ``alg: none`` token (any spelling of ``none``) with an empty signature."""
    return signing_input({"alg": alg, "typ": "JWT"}, claims) + "."


def valid_claims(issuer: str, subject: str, scopes: str, /, **changes: Any) -> dict[str, Any]:
    """Claims the services would accept; ``changes`` overrides (``None`` removes a claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "scope": scopes,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": issuer,
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


class RsaKey:
    """An RSA key pair made by the ``openssl`` binary (no crypto library is a dependency)."""

    def __init__(self, directory: Path) -> None:
        self.private_path = directory / "attacker-rsa.pem"
        self.public_path = directory / "attacker-rsa.pub.pem"
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
             "-out", str(self.private_path)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        subprocess.run(
            ["openssl", "pkey", "-in", str(self.private_path), "-pubout",
             "-out", str(self.public_path)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.public_pem = self.public_path.read_bytes()

    def rs256(self, claims: dict[str, Any]) -> str:
        """A genuine RS256 token signed with this key."""
        message = signing_input({"alg": "RS256", "typ": "JWT"}, claims)
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.private_path)],
            input=message.encode(), check=True, capture_output=True, timeout=60,
        ).stdout  # fmt: skip
        return f"{message}.{b64url(signature)}"
