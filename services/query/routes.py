"""The read API: leaderboards (user, around, friends) and competitions, and the
documentation of every operation (top pages are served by :mod:`services.query.top`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.query.signed_cursor import decode_cursor, encode_cursor
from shared.db import POSTGRES_FAILURES
from shared.entrants import attempts_left
from shared.errors import BadRequestError, NotFoundError
from shared.http.openapi import Operation, Parameter, error_responses
from shared.http.representation import Representation
from shared.schemas.competition import Competition, Visibility
from shared.windows import CURRENT, resolve_window

from . import params
from .catalog import may_read_private, not_found
from .context import QueryContext
from .schemas import (
    CompetitionDetail,
    CompetitionList,
    Neighbourhood,
    TopPage,
    UsersRanks,
    UserStanding,
)

DEFAULT_COMPETITIONS_LIMIT = 20
_PUBLIC_HEADERS = {"cache-control": "public, no-cache"}
_PRIVATE_HEADERS = {"cache-control": "private, no-cache"}
_STALE_HEADER = "x-podium-stale"

logger = logging.getLogger(__name__)


def _context(request: Request) -> QueryContext:
    context: QueryContext = request.app.state.query
    return context


def cache_headers(competition: Competition) -> dict[str, str]:
    return _PUBLIC_HEADERS if competition.visibility is Visibility.PUBLIC else _PRIVATE_HEADERS


def entry_dict(rank: int, user_id: str, score: float) -> dict[str, Any]:
    return {"rank": rank, "user_id": user_id, "score": score}


async def readable(request: Request) -> tuple[QueryContext, Competition]:
    """The query context and the competition of the path, if the caller may read it."""
    context = _context(request)
    competition_id: str = request.path_params["cid"]
    if not params.IDENTIFIER.match(competition_id):
        raise not_found(competition_id)
    return context, await context.catalog.readable(request, competition_id)


def resolved_window(request: Request, competition: Competition) -> str:
    window = params.window(request.query_params, competition)
    return resolve_window(competition.reset, window, datetime.now(UTC), competition.timezone)


# --- one user, around a user, a set of users -----------------------------------------------
async def user_standing(request: Request) -> Response:
    """A user's rank and score; 404 when the user has no standing in the window."""
    context, competition = await readable(request)
    user_id = params.identifier(request.path_params["uid"], "user_id")
    window = resolved_window(request, competition)
    # attempts (PostgreSQL) before the standing (Redis), as the live page's viewer card reads
    # them: the ranker writes Redis just before the batch's commit, so in this order the
    # standing may count a score that ``used`` does not yet (docs/tournaments.md), never the
    # other way round
    attempts = (
        await attempts_of(context, competition, window, user_id)
        if competition.max_attempts is not None
        else None
    )
    ranks = await context.reader.ranks(competition, window, [user_id])
    entry = ranks.found.get(user_id)
    if entry is None:
        raise NotFoundError(
            f"user {user_id!r} has no standing in window {window!r}",
            details={"user_id": user_id, "window": window},
        )
    payload = {
        "competition_id": competition.id,
        "window": window,
        "user_id": user_id,
        "rank": entry.rank,
        "score": entry.score,
        "total": ranks.total,
        "percentile": ranks.percentiles[user_id],
    }
    if competition.max_attempts is not None:
        payload["attempts"] = attempts
    return Representation.of(payload).respond(request.headers, headers=cache_headers(competition))


async def attempts_of(
    context: QueryContext, competition: Competition, window: str, user_id: str
) -> dict[str, Any] | None:
    """The user's attempts in the read window's attempt window (see ``schemas.Attempts``),
    from PostgreSQL; None (absent from the answer) when it cannot be read: the standing is
    Redis's answer and stays available without PostgreSQL."""
    try:
        return await attempts_left(context.pool, competition, window, user_id, datetime.now(UTC))
    except POSTGRES_FAILURES:
        logger.warning("attempts of %s unreadable", user_id, exc_info=True)
        return None


async def around(request: Request) -> Response:
    """The user and up to ``radius`` neighbours above and below."""
    context, competition = await readable(request)
    user_id = params.identifier(request.path_params["uid"], "user_id")
    radius = params.bounded_int(
        request.query_params,
        "radius",
        default=params.DEFAULT_RADIUS,
        minimum=0,
        maximum=params.MAX_RADIUS,
    )
    window = resolved_window(request, competition)
    neighbourhood = await context.reader.around(competition, window, user_id, radius)
    if neighbourhood.rank is None:
        raise NotFoundError(
            f"user {user_id!r} has no standing in window {window!r}",
            details={"user_id": user_id, "window": window},
        )
    payload = {
        "competition_id": competition.id,
        "window": window,
        "user_id": user_id,
        "rank": neighbourhood.rank,
        "total": neighbourhood.total,
        "percentile": neighbourhood.percentile,
        "entries": [entry_dict(e.rank, e.user_id, e.score) for e in neighbourhood.entries],
    }
    return Representation.of(payload).respond(request.headers, headers=cache_headers(competition))


async def users_ranks(request: Request) -> Response:
    """Ranks of up to 100 users, best first; users without a standing listed as absent."""
    context, competition = await readable(request)
    user_ids = params.user_ids(request.query_params)
    window = resolved_window(request, competition)
    ranks = await context.reader.ranks(competition, window, user_ids)
    # best first; inside a tie (standard, dense) in first-reached order, as every page
    found = sorted(ranks.found.values(), key=lambda entry: ranks.positions[entry.user_id])
    payload = {
        "competition_id": competition.id,
        "window": window,
        "total": ranks.total,
        "entries": [
            {**entry_dict(e.rank, e.user_id, e.score), "percentile": ranks.percentiles[e.user_id]}
            for e in found
        ],
        "absent": [user_id for user_id in user_ids if user_id not in ranks.found],
    }
    return Representation.of(payload).respond(request.headers, headers=cache_headers(competition))


# --- competitions ---------------------------------------------------------------------------
async def competitions(request: Request) -> Response:
    """Competitions ordered by id; private ones only for ``leaderboards:read`` tokens."""
    context = _context(request)
    include_private = may_read_private(request, context.settings)
    limit = params.bounded_int(
        request.query_params,
        "limit",
        default=DEFAULT_COMPETITIONS_LIMIT,
        minimum=1,
        maximum=params.MAX_LIMIT,
    )
    after_id: str | None = None
    cursor = request.query_params.get("cursor")
    if cursor:
        payload = decode_cursor(cursor, context.settings.verification_secrets)
        after_id = payload.get("after")
        if not isinstance(after_id, str) or payload.get("private") != include_private:
            raise BadRequestError("cursor belongs to another listing", details={"field": "cursor"})
    rows = await context.catalog.page(
        after_id=after_id, limit=limit + 1, include_private=include_private
    )
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(
            {"after": rows[-1].id, "private": include_private}, context.settings.signing_secret
        )
    payload = {
        "competitions": [row.model_dump(mode="json") for row in rows],
        "next_cursor": next_cursor,
    }
    cache = _PRIVATE_HEADERS if include_private else _PUBLIC_HEADERS
    return Representation.of(payload).respond(request.headers, headers=cache)


async def competition_detail(request: Request) -> Response:
    """A competition with its entrant count and the windows that hold standings."""
    context, competition = await readable(request)
    windows = await context.catalog.windows(competition.id)
    entrants = next((w.entrants for w in windows if w.window == "alltime"), 0)
    payload = {
        **competition.model_dump(mode="json"),
        "entrants": entrants,
        "current_window": resolve_window(
            competition.reset, CURRENT, datetime.now(UTC), competition.timezone
        ),
        "windows": [{"window": w.window, "entrants": w.entrants} for w in windows],
    }
    return Representation.of(payload).respond(request.headers, headers=cache_headers(competition))


# --- the operations, documented once ------------------------------------------------------
CID = Parameter("cid", "path", "Competition id.")
_UID = Parameter("uid", "path", "User id.")
WINDOW = Parameter(
    "window",
    "query",
    "`alltime` (default), `current`, or a period label of the competition's reset schedule"
    " (`2026-11-25`, `2026-W48`, `2026-11`).",
)
ETAG = Parameter("If-None-Match", "header", "An ETag from an earlier answer: 304 if unchanged.")
READ_SCOPES = ("leaderboards:read", "admin")
PRIVATE_NOTE = (
    "Public competitions need no token. Private ones answer 401 without a token and 404 when"
    " the token lacks `leaderboards:read` (or `admin`)."
)
LEADERBOARD_ERRORS = error_responses(400, 401, 404, 429, 503)
_RANKS_NOTE = (
    " Ranks follow the competition's `rank_style` (`unique`: 1234, `standard`: 1224,"
    " `dense`: 1223; inside a tie, first to reach the score first). `percentile` is"
    " 100 * (total - users with a strictly better score) / total: the share of the window's"
    " ranked users this user beats or ties, itself included (the best score is 100)."
)


def _integer(minimum: int, maximum: int, default: int) -> dict[str, int | str]:
    return {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}


TOP_PARAMETERS = (
    CID,
    Parameter(
        "limit",
        "query",
        "Entries per page.",
        _integer(1, params.MAX_LIMIT, params.DEFAULT_LIMIT),
    ),
    Parameter(
        "cursor",
        "query",
        "`next_cursor` or `prev_cursor` of a page (opaque, signed).",
    ),
    Parameter(
        "from_rank",
        "query",
        "Start the page at the first entry ranked `from_rank` or worse in the"
        " competition's rank style (not with `cursor`: 400).",
        {"type": "integer", "minimum": 1, "maximum": params.MAX_FROM_RANK},
    ),
    WINDOW,
    ETAG,
)

OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/leaderboards/{cid}/top",
        "A page of the leaderboard, best first",
        None,  # routed by services.query.top.TopPages (raw ASGI, the hot path)
        {200: TopPage, 304: "not modified", **LEADERBOARD_ERRORS},
        parameters=TOP_PARAMETERS,
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE
        + " Hot pages come from a micro-cache; when Redis is down a cached page may be served"
        " with `X-Podium-Stale: true`." + _RANKS_NOTE,
        tags=("leaderboards",),
    ),
    Operation(
        "GET",
        "/api/v1/leaderboards/{cid}/users/{uid}",
        "A user's rank and score",
        user_standing,
        {200: UserStanding, 304: "not modified", **LEADERBOARD_ERRORS},
        parameters=(CID, _UID, WINDOW, ETAG),
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE + _RANKS_NOTE,
        tags=("leaderboards",),
    ),
    Operation(
        "GET",
        "/api/v1/leaderboards/{cid}/around/{uid}",
        "A user and their neighbours",
        around,
        {200: Neighbourhood, 304: "not modified", **LEADERBOARD_ERRORS},
        parameters=(
            CID,
            _UID,
            Parameter(
                "radius",
                "query",
                "Neighbours on each side.",
                _integer(0, params.MAX_RADIUS, params.DEFAULT_RADIUS),
            ),
            WINDOW,
            ETAG,
        ),
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE + _RANKS_NOTE,
        tags=("leaderboards",),
    ),
    Operation(
        "GET",
        "/api/v1/leaderboards/{cid}/users",
        "Ranks of a set of users (friends)",
        users_ranks,
        {200: UsersRanks, 304: "not modified", **LEADERBOARD_ERRORS},
        parameters=(
            CID,
            Parameter(
                "ids",
                "query",
                f"Comma-separated user ids, at most {params.MAX_IDS}.",
                required=True,
            ),
            WINDOW,
            ETAG,
        ),
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE + _RANKS_NOTE,
        tags=("leaderboards",),
    ),
    Operation(
        "GET",
        "/api/v1/competitions",
        "Competitions, ordered by id",
        competitions,
        {200: CompetitionList, 304: "not modified", **error_responses(400, 401, 429, 503)},
        parameters=(
            Parameter(
                "limit",
                "query",
                "Competitions per page.",
                _integer(1, params.MAX_LIMIT, DEFAULT_COMPETITIONS_LIMIT),
            ),
            Parameter("cursor", "query", "`next_cursor` of the previous page (opaque, signed)."),
            ETAG,
        ),
        scopes=READ_SCOPES,
        auth_optional=True,
        description="Private competitions are listed only for `leaderboards:read` tokens.",
        tags=("competitions",),
    ),
    Operation(
        "GET",
        "/api/v1/competitions/{cid}",
        "A competition with its entrants and windows",
        competition_detail,
        {200: CompetitionDetail, 304: "not modified", **error_responses(401, 404, 429, 503)},
        parameters=(CID, ETAG),
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE,
        tags=("competitions",),
    ),
]
