"""The notifier's settings: the common ones plus what only the notifier reads."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_settings import NoDecode

from shared.settings import CommonSettings

# A CSP host-source that names one web origin: http(s), a host (or ``*.`` a subdomain
# wildcard), an optional port; no path, quotes, semicolons or spaces (they would change the
# policy the header states), no bare ``*`` (that is every site).
_ORIGIN = re.compile(
    r"^https?://(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*"
    r"(:\d{1,5})?$"
)


def _split_origins(value: object) -> object:
    """``a b`` or ``a,b`` (or both) for the origin list."""
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    return value


def _check_origins(origins: list[str]) -> list[str]:
    checked = []
    for origin in origins:
        normalized = origin.lower().rstrip("/")
        if not _ORIGIN.fullmatch(normalized):
            raise ValueError(
                f"{origin!r} is not an origin: write scheme://host[:port] (http or https,"
                " optionally https://*.example.com), separated by spaces or commas"
            )
        checked.append(normalized)
    return list(dict.fromkeys(checked))


EmbedOrigins = Annotated[
    list[str], NoDecode, BeforeValidator(_split_origins), AfterValidator(_check_origins)
]
"""Web origins, written ``https://a.example https://b.example`` or with commas."""


class NotifierSettings(CommonSettings):
    """The notifier's configuration: its port, send rate, WebSocket limits and page framing.

    Only the notifier serves WebSockets, so the ``ws_*`` fields are its own; the two that
    configure uvicorn's WebSocket protocol reach the shared server code as an argument
    (:func:`services.notifier.app.websocket_limits`), not as fields of the common settings.
    """

    notifier_port: int = Field(8003, ge=1, le=65535, description="Notifier service HTTP port.")
    notify_max_hz: float = Field(5.0, gt=0, description="Most messages/s sent to one client.")
    ws_send_timeout: float = Field(
        5.0, gt=0, description="Seconds a client may take to accept a message before closing."
    )
    ws_queue_size: int = Field(8, ge=1, description="Per-client outgoing queue bound.")
    ws_max_connections: int = Field(20_000, ge=1, description="WebSocket connections/process.")
    ws_ping_interval_s: float = Field(20.0, gt=0, description="WebSocket ping interval.")
    ws_max_message_bytes: int = Field(4096, ge=64, description="Largest client WS message.")
    ws_client_messages_per_s: float = Field(
        2.0, gt=0, description="Messages/s a WS client may send (resync, ping); more is 1008."
    )
    ws_client_message_burst: int = Field(
        10, ge=1, description="Burst of client WS messages allowed above that rate."
    )
    ws_connect_rate_per_s: float = Field(
        20.0, gt=0, description="WebSocket connects/s per token subject."
    )
    ws_connect_burst: int = Field(100, ge=1, description="WebSocket connect burst per subject.")
    ws_connect_rate_anonymous_per_s: float = Field(
        200.0, gt=0, description="WebSocket connects/s per client address (no or a bad token)."
    )
    ws_connect_anonymous_burst: int = Field(
        2000,
        ge=1,
        description="WebSocket connect burst per client address (generous: one NAT may hold "
        "a whole venue of screens and phones).",
    )
    embed_allowed_origins: EmbedOrigins = Field(
        default_factory=list,
        description="Origins (scheme://host[:port], space- or comma-separated) whose pages may"
        " frame the live leaderboard page with `?embed=1` (its CSP `frame-ancestors`). Empty:"
        " no site may frame it (`frame-ancestors 'none'`, `X-Frame-Options: DENY`).",
    )
