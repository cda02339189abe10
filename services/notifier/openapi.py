"""The notifier's OpenAPI document: the page and the WebSocket handshake (see :mod:`protocol`)."""

from __future__ import annotations

from typing import Any

from services.notifier import protocol
from services.notifier.schemas import PageAbout
from shared.http.openapi import (
    Operation,
    Parameter,
    build_openapi,
    error_responses,
    standard_operations,
)

_COMPETITION = Parameter("competition_id", "path", "The competition id.")


def notifier_operations() -> list[Operation]:
    """The notifier's HTTP routes (each is served by a route of its own)."""
    return [
        Operation(
            "GET",
            "/leaderboards/{competition_id}",
            "The live leaderboard page",
            None,
            {
                200: "HTML page (vanilla JS; updates over the WebSocket)",
                **error_responses(404, 422, 429),
            },
            parameters=(
                _COMPETITION,
                Parameter("user", "query", "Show this user's rank."),
                Parameter("window", "query", "`alltime` (default), `current` or a period."),
                Parameter("top", "query", "How many entries to show.", {"type": "integer"}),
                Parameter(
                    "embed",
                    "query",
                    "`1`: for an iframe (no chrome, transparent background); framed only by"
                    " the origins of `PODIUM_EMBED_ALLOWED_ORIGINS` (CSP `frame-ancestors`).",
                    {"type": "string", "enum": ["0", "1", "true", "false"]},
                ),
                Parameter(
                    "theme",
                    "query",
                    "Colour scheme: `auto` (the viewer's preference), `light` or `dark`.",
                    {"type": "string", "enum": ["auto", "light", "dark"]},
                ),
            ),
            tags=("notifier",),
        ),
        Operation(
            "GET",
            "/leaderboards/{competition_id}/about",
            "What the live page shows besides the socket",
            None,
            {
                200: PageAbout,
                **error_responses(401, 403, 404, 422, 429, 503),
            },
            parameters=(
                _COMPETITION,
                Parameter("window", "query", "`alltime` (default), `current` or a period."),
                Parameter("user", "query", "Also give this user's rank and percentile (`me`)."),
            ),
            scopes=("leaderboards:read",),
            auth_optional=True,
            tags=("notifier",),
        ),
        Operation(
            "GET",
            "/ws/leaderboards/{competition_id}",
            "Subscribe to a leaderboard (WebSocket upgrade)",
            None,
            {
                101: "WebSocket: a snapshot, then coalesced updates",
                **error_responses(426, 429),
            },
            parameters=(
                _COMPETITION,
                Parameter("window", "query", "`alltime` (default), `current` or a period."),
                Parameter("user", "query", "Also follow this user's rank (`me`)."),
                Parameter("top", "query", "Top entries to receive.", {"type": "integer"}),
                Parameter("token", "query", "A token, when Sec-WebSocket-Protocol is not used."),
                Parameter(
                    "board",
                    "query",
                    "`users` (default) or `teams`: the competition's team board (frames name"
                    " the team in `user_id`, `user` names a team; refused 1008 `not_found`"
                    " without a team board).",
                    {"type": "string", "enum": ["users", "teams"], "default": "users"},
                ),
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
