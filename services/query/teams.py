"""Team boards in the read API: a team's standing and its members ranked inside it (the
team board's pages are :class:`services.query.top.TopPages` with ``teams=True``).

A team board is read like a competition under its board id (``shared.teams``): the same
Redis keys, rebuild on a lost board, rank style and windows. Who is in a team comes from
PostgreSQL (``team_members``, the ranker writes it with the standings).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from shared.db import POSTGRES_FAILURES
from shared.errors import DependencyUnavailableError, NotFoundError
from shared.http.openapi import Operation, Parameter
from shared.http.representation import Representation
from shared.rank_styles import rank_of
from shared.schemas.competition import Competition
from shared.teams import required_team_board

from . import params
from .context import QueryContext
from .routes import (
    CID,
    ETAG,
    LEADERBOARD_ERRORS,
    PRIVATE_NOTE,
    READ_SCOPES,
    TOP_PARAMETERS,
    WINDOW,
    cache_headers,
    readable,
    resolved_window,
)
from .schemas import TeamMembers, TeamStanding, TeamTopPage

T = TypeVar("T")
MAX_MEMBERS = 1000
"""The most members a members read ranks (larger teams: the first by user id)."""


def board_of(competition: Competition) -> Competition:
    """The competition's team board; 404 when it has none."""
    return required_team_board(competition, "cid")


async def _members(context: QueryContext, competition_id: str, team_id: str) -> list[str]:
    rows = await _read(
        context.pool.fetch(
            "SELECT user_id FROM team_members WHERE competition_id = $1 AND team_id = $2"
            " ORDER BY user_id LIMIT $3",
            competition_id,
            team_id,
            MAX_MEMBERS,
        )
    )
    return [row["user_id"] for row in rows]


async def _read(query: Awaitable[T]) -> T:
    """A team membership read; 503 when PostgreSQL cannot answer (the board itself is
    Redis's, but who is in a team is PostgreSQL's)."""
    try:
        return await query
    except POSTGRES_FAILURES as error:
        raise DependencyUnavailableError("team members cannot be read now") from error


async def team_standing(request: Request) -> Response:
    """A team's rank and score in a window and how many members it has; 404 when it has no
    standing there."""
    context, competition = await readable(request)
    board = board_of(competition)
    team_id = params.identifier(request.path_params["tid"], "team_id")
    window = resolved_window(request, competition)
    ranks = await context.reader.ranks(board, window, [team_id])
    entry = ranks.found.get(team_id)
    if entry is None:
        raise NotFoundError(
            f"team {team_id!r} has no standing in window {window!r}",
            details={"team_id": team_id, "window": window},
        )
    members = await _read(
        context.pool.fetchval(
            "SELECT count(*) FROM team_members WHERE competition_id = $1 AND team_id = $2",
            competition.id,
            team_id,
        )
    )
    payload = {
        "competition_id": competition.id,
        "window": window,
        "team_id": team_id,
        "rank": entry.rank,
        "score": entry.score,
        "total": ranks.total,
        "percentile": ranks.percentiles[team_id],
        "members": max(int(members), 1),
    }
    return Representation.of(payload).respond(request.headers, headers=cache_headers(competition))


async def team_members(request: Request) -> Response:
    """The team's members ranked inside it by their standings in the window (same order and
    rank style as the competition's board); members without a standing listed as absent."""
    context, competition = await readable(request)
    board_of(competition)
    team_id = params.identifier(request.path_params["tid"], "team_id")
    window = resolved_window(request, competition)
    members = await _members(context, competition.id, team_id)
    if not members:
        raise NotFoundError(
            f"team {team_id!r} has no members", details={"team_id": team_id, "window": window}
        )
    ranks = await context.reader.ranks(competition, window, members)
    ordered = sorted(ranks.found.values(), key=lambda entry: ranks.positions[entry.user_id])
    entries = []
    better = distinct_better = 0  # members with a better score, and distinct better scores
    for position, entry in enumerate(ordered):
        if position and entry.score != ordered[position - 1].score:
            better, distinct_better = position, distinct_better + 1
        rank = rank_of(competition.rank_style, position, better, distinct_better)
        entries.append(
            {"rank": rank, "user_id": entry.user_id, "score": entry.score, "board_rank": entry.rank}
        )
    payload = {
        "competition_id": competition.id,
        "window": window,
        "team_id": team_id,
        "entries": entries,
        "absent": [user for user in members if user not in ranks.found],
    }
    return Representation.of(payload).respond(request.headers, headers=cache_headers(competition))


_TID = Parameter("tid", "path", "Team id.")
_TEAMS_NOTE = (
    " 404 when the competition has no team board (`teams`). A team's score is the aggregate"
    " (`teams.aggregate`) of its members' scores in the window; a user's team is the"
    " `team_id` of their latest applied score carrying one."
)
TEAM_OPERATIONS = [
    Operation(
        "GET",
        "/api/v1/leaderboards/{cid}/teams/top",
        "A page of the team board, best first",
        None,  # routed by services.query.top.TopPages(teams=True)
        {200: TeamTopPage, 304: "not modified", **LEADERBOARD_ERRORS},
        parameters=TOP_PARAMETERS,
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE + _TEAMS_NOTE + " Paged with cursors like the top.",
        tags=("teams",),
    ),
    Operation(
        "GET",
        "/api/v1/leaderboards/{cid}/teams/{tid}",
        "A team's rank, score and member count",
        team_standing,
        {200: TeamStanding, 304: "not modified", **LEADERBOARD_ERRORS},
        parameters=(CID, _TID, WINDOW, ETAG),
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE + _TEAMS_NOTE,
        tags=("teams",),
    ),
    Operation(
        "GET",
        "/api/v1/leaderboards/{cid}/teams/{tid}/members",
        "A team's members ranked inside the team",
        team_members,
        {200: TeamMembers, 304: "not modified", **LEADERBOARD_ERRORS},
        parameters=(CID, _TID, WINDOW, ETAG),
        scopes=READ_SCOPES,
        auth_optional=True,
        description=PRIVATE_NOTE
        + _TEAMS_NOTE
        + f" At most {MAX_MEMBERS} members (the first by user id) are ranked.",
        tags=("teams",),
    ),
]
