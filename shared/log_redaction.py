"""Keeping credentials out of logs: a filter that masks tokens in every log record.

Libraries log what they receive: uvicorn logs each WebSocket's path with its query string
(the notifier accepts ``?token=``) and the ``websockets`` library logs handshake headers at
DEBUG (``Sec-WebSocket-Protocol: bearer, <token>``). The filter rewrites the rendered
message, so whatever logger or level, a bearer token never reaches a log line.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

_PATTERNS = (
    # anything shaped like a JWT (base64url JSON header, claims, optional signature)
    (re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?"), REDACTED),
    # a token in a query string: ?token=… or &access_token=…
    (re.compile(r"(?i)((?:^|[?&\s])(?:access_)?token=)[^&\s\"']+"), r"\1" + REDACTED),
    # credentials in headers: Authorization: Bearer …, Sec-WebSocket-Protocol: bearer, …
    (re.compile(r"(?i)(\bbearer[ ,]+)[^\s\"',]+"), r"\1" + REDACTED),
)


def redact(text: str) -> str:
    """``text`` with every token-looking part replaced by ``[redacted]``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecrets(logging.Filter):
    """Masks tokens in a record's message (its arguments included) before it is formatted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record is logging's own problem; leave it as it is
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
