"""Opaque pagination cursors: a small JSON object, base64url-encoded and HMAC-signed.

Clients cannot read meaning into a cursor nor forge one: any change to it fails the signature
and is a 400. Cursors are signed with the first JWT secret and verified against all of them,
so a secret rotation does not break cursors already handed out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any

import orjson

from shared.errors import BadRequestError

MAX_CURSOR_CHARS = 512
_SIGNATURE_BYTES = 16


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def encode_cursor(payload: dict[str, Any], secret: str) -> str:
    """The signed, opaque form of ``payload`` (a JSON-serialisable dict)."""
    body = orjson.dumps(payload)
    return f"{_b64encode(body)}.{_b64encode(_sign(secret, body))}"


def decode_cursor(cursor: str, secrets: list[str], *, field: str = "cursor") -> dict[str, Any]:
    """The payload of a cursor made by :func:`encode_cursor`; 400 naming ``field`` otherwise."""
    invalid = BadRequestError(f"{field} is invalid or was tampered with", details={"field": field})
    if len(cursor) > MAX_CURSOR_CHARS or cursor.count(".") != 1:
        raise invalid
    body_text, signature_text = cursor.split(".")
    try:
        body = _b64decode(body_text)
        signature = _b64decode(signature_text)
    except (binascii.Error, ValueError) as error:
        raise invalid from error
    if not any(hmac.compare_digest(signature, _sign(secret, body)) for secret in secrets):
        raise invalid
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise invalid from error
    if not isinstance(payload, dict):
        raise invalid
    return payload
