"""The notifier's OpenAPI document: the page and the WebSocket handshake (see :mod:`protocol`)."""

from __future__ import annotations

from typing import Any

from services.notifier import protocol
from shared.http.openapi import (
    Operation,
    Parameter,
    build_openapi,
    error_responses,
    standard_operations,
)

_COMPETITION = Parameter("competition_id", "path", "The competition id.")


def notifier_operations() -> list[Operation]:
    """The notifier's HTTP routes (both are served by routes of their own)."""
    return [
        Operation(
            "GET",
            "/leaderboards/{competition_id}",
            "The live leaderboard page",
            None,
            {
                200: "HTML page (vanilla JS; updates over the WebSocket)",
                **error_responses(404, 422),
            },
            parameters=(
                _COMPETITION,
                Parameter("user", "query", "Show this user's rank."),
                Parameter("window", "query", "`alltime` (default), `current` or a period."),
                Parameter("top", "query", "How many entries to show.", {"type": "integer"}),
            ),
            tags=("notifier",),
        ),
        Operation(
            "GET",
            "/ws/leaderboards/{competition_id}",
            "Subscribe to a leaderboard (WebSocket upgrade)",
            None,
            {
                101: "WebSocket: a snapshot, then coalesced updates",
                **error_responses(426),
            },
            parameters=(
                _COMPETITION,
                Parameter("window", "query", "`alltime` (default), `current` or a period."),
                Parameter("user", "query", "Also follow this user's rank (`me`)."),
                Parameter("top", "query", "Top entries to receive.", {"type": "integer"}),
                Parameter("token", "query", "A token, when Sec-WebSocket-Protocol is not used."),
            ),
            scopes=("leaderboards:read",),
            auth_optional=True,
            description=protocol.__doc__ or "",
            tags=("notifier",),
        ),
    ]


def notifier_openapi() -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
    return build_openapi(
        "Podium notifier", "1.0.0", [*standard_operations(), *notifier_operations()]
    )
