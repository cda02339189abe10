"""The log filter masks tokens wherever a library puts them."""

from __future__ import annotations

import base64
import logging

import pytest

from shared.log_redaction import REDACTED, RedactSecrets, redact


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# built here rather than written out, so that the repository scan for tokens stays clean
TOKEN = ".".join([_b64(b'{"alg":"HS256"}'), _b64(b'{"sub":"alice"}'), _b64(b"signature-signature")])


@pytest.mark.parametrize(
    "line",
    [
        f'127.0.0.1:5 - "WebSocket /ws/leaderboards/c1?top=3&token={TOKEN}" [accepted]',
        f"< Sec-WebSocket-Protocol: bearer, {TOKEN}",
        f"Authorization: Bearer {TOKEN}",
        f"bad token {TOKEN} seen",
        "GET /x?token=opaque-not-a-jwt HTTP/1.1",
        "< sec-websocket-protocol: bearer, opaque-not-a-jwt",
    ],
)
def test_tokens_are_masked(line: str) -> None:
    cleaned = redact(line)
    assert TOKEN not in cleaned
    assert "opaque-not-a-jwt" not in cleaned
    assert REDACTED in cleaned


def test_other_text_is_left_alone() -> None:
    line = "GET /api/v1/leaderboards/c1/top?limit=10 200 (token bucket: 3 left)"
    assert redact(line) == line


def test_filter_rewrites_the_formatted_message() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s - %s", ("peer", TOKEN), None)
    assert RedactSecrets().filter(record)
    assert record.getMessage() == f"peer - {REDACTED}"
