"""``GET /leaderboards/{cid}``: the live leaderboard page (static HTML + vanilla JS).

The page is the same file for every competition (the script reads the id from the URL), so
nothing user-controlled is rendered on the server: only two validated flags become classes
of ``<html>`` (``?embed=1``, ``?theme=``), so an embedded page has no chrome from its first
paint. It gets its own Content-Security-Policy: its script and stylesheet from this origin,
WebSockets to this host, and no inline script or style. Framing: the page with chrome is
never framed (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``); ``?embed=1`` may be
framed by the origins of ``PODIUM_EMBED_ALLOWED_ORIGINS`` (then no X-Frame-Options, which
cannot name origins), and by nobody while that setting is empty.

``GET /leaderboards/{cid}/about`` is what the page shows besides the socket's frames: the
competition's name, its window tabs (all-time, the current period, the three before it),
when the current period ends, and the viewer's rank, score and percentile (``?user=``).
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from pathlib import Path

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.notifier import protocol
from services.notifier.repository import NotifierRepository
from services.notifier.schemas import (
    PageAbout,
    TeamRow,
    ViewerAttempts,
    ViewerStanding,
    WindowTab,
)
from services.notifier.settings import NotifierSettings
from services.notifier.ws import readable_competition
from shared.errors import (
    DependencyUnavailableError,
    NotFoundError,
    ValidationFailedError,
)
from shared.http.auth import optional_principal
from shared.schemas.competition import Competition
from shared.schemas.identifiers import IDENTIFIER_PATTERN
from shared.teams import team_board
from shared.windows import (
    ALLTIME,
    CURRENT,
    period_end,
    previous_periods,
    resolve_window,
)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAST_PERIODS = 3
"""How many ended periods the page offers as tabs (besides all-time and the current one)."""
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_FLAGS = {"1": True, "true": True, "0": False, "false": False, "": False}
_THEMES = ("auto", "light", "dark")
_HTML_OPEN = '<html lang="en">'

PAGE_TEAMS = 5
"""Teams the live page shows."""


def frame_ancestors(embed: bool, allowed_origins: list[str]) -> str:
    """The ``frame-ancestors`` sources: the allowed origins in embed mode, else ``'none'``."""
    if embed and allowed_origins:
        return " ".join(allowed_origins)
    return "'none'"


def page_csp(host: str | None, ancestors: str = "'none'") -> str:
    """The page's policy; ``connect-src`` names this host's ws:/wss: origins exactly."""
    connect = "'self'"
    if host and _HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; "
        f"frame-ancestors {ancestors}"
    )


def page_headers(host: str | None, embed: bool, allowed_origins: list[str]) -> dict[str, str]:
    """CSP, framing and caching headers of the page.

    X-Frame-Options cannot name origins, so it is sent only when nobody may frame the page;
    the edge middleware adds no default one next to a CSP that states ``frame-ancestors``.
    """
    ancestors = frame_ancestors(embed, allowed_origins)
    headers = {"content-security-policy": page_csp(host, ancestors), "cache-control": "no-cache"}
    if ancestors == "'none'":
        headers["x-frame-options"] = "DENY"
    return headers


@functools.cache
def page_html(embed: bool, theme: str) -> str:
    """The page's HTML with the presentation flags as classes of ``<html>``."""
    html = (STATIC_DIR / "leaderboard.html").read_text(encoding="utf-8")
    classes = [name for name, wanted in (("embed", embed), (f"theme-{theme}", True)) if wanted]
    return html.replace(_HTML_OPEN, f'<html lang="en" class="{" ".join(classes)}">', 1)


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "").lower()
    if value not in _FLAGS:
        raise ValidationFailedError(
            f"{name} must be 1 or 0",
            details=[{"field": f"query.{name}", "message": "1 or 0", "type": "value_error"}],
        )
    return _FLAGS[value]


def _theme(request: Request) -> str:
    theme = request.query_params.get("theme", "auto")
    if theme not in _THEMES:
        raise ValidationFailedError(
            "theme must be auto, light or dark",
            details=[{"field": "query.theme", "message": "auto|light|dark", "type": "enum"}],
        )
    return theme


def _competition_id(request: Request) -> str:
    competition_id: str = request.path_params["competition_id"]
    if not _IDENTIFIER.fullmatch(competition_id):
        raise NotFoundError("no such leaderboard", details={"field": "path.competition_id"})
    return competition_id


async def leaderboard_page(request: Request) -> Response:
    """The page for one competition (unknown or private ones are reported by the socket)."""
    _competition_id(request)
    settings: NotifierSettings = request.app.state.settings
    # the script hands these to the socket: a bad one is a 422 naming it now, not a page
    # that loads and then fails
    protocol.parse_params(dict(request.query_params), settings.ranker_top_n)
    embed = _flag(request, "embed")
    return Response(
        page_html(embed, _theme(request)),
        media_type="text/html; charset=utf-8",
        headers=page_headers(request.headers.get("host"), embed, settings.embed_allowed_origins),
    )


def window_tabs(competition: Competition, now: datetime) -> list[WindowTab]:
    """The windows the page offers: all-time, the current period, the three before it."""
    tabs = [WindowTab(window=ALLTIME, kind="alltime")]
    current = resolve_window(competition.reset, CURRENT, now, competition.timezone)
    if current == ALLTIME:
        return tabs
    tabs.append(WindowTab(window=CURRENT, kind="current", period=current))
    for label in previous_periods(competition.reset, now, competition.timezone, PAST_PERIODS):
        tabs.append(WindowTab(window=label, kind="past", period=label))
    return tabs


async def leaderboard_about(request: Request) -> Response:
    """Name, window tabs, period end and (``?user=``) the viewer's standing, for the page."""
    competition_id = _competition_id(request)
    settings: NotifierSettings = request.app.state.settings
    repository: NotifierRepository = request.app.state.repository
    params = protocol.parse_params(dict(request.query_params), settings.ranker_top_n)
    principal = optional_principal(request, settings)
    competition = await readable_competition(repository, competition_id, principal, params.window)
    now = datetime.now(UTC)
    window = resolve_window(competition.reset, params.window, now, competition.timezone)
    about = PageAbout(
        competition_id=competition.id,
        name=competition.name,
        sort_order=competition.sort_order.value,
        rank_style=competition.rank_style.value,
        reset=competition.reset.value,
        timezone=competition.timezone,
        ends_at=competition.ends_at,
        server_time=now,
        window=window,
        current_window=resolve_window(competition.reset, CURRENT, now, competition.timezone),
        period_ends_at=period_end(competition.reset, now, competition.timezone),
        windows=window_tabs(competition, now),
    )
    if competition.teams is not None:
        try:
            standings = await repository.standings(
                team_board(competition), window, PAGE_TEAMS, [], known_version=0
            )
        except RedisError as error:
            raise DependencyUnavailableError("the ranking index is unavailable") from error
        about.teams = [
            TeamRow(rank=entry.rank, team_id=entry.user_id, score=entry.score)
            for entry in standings.top
        ]
    if params.user is not None and competition.max_attempts is not None:
        try:
            attempts = await repository.attempts(competition, window, params.user)
        except DependencyUnavailableError:
            attempts = None  # the rest of the page does not need PostgreSQL
        if attempts is not None:
            about.attempts = ViewerAttempts.model_validate(attempts)
    if params.user is not None:
        try:
            ranks = await repository.user_ranks(competition, window, [params.user])
        except RedisError as error:
            raise DependencyUnavailableError("the ranking index is unavailable") from error
        entry = ranks.found.get(params.user)
        about.me = (
            None
            if entry is None
            else ViewerStanding(
                user_id=params.user,
                rank=entry.rank,
                score=entry.score,
                total=ranks.total,
                percentile=ranks.percentiles[params.user],
            )
        )
    return JSONResponse(
        about.model_dump(mode="json", exclude_unset=True), headers={"cache-control": "no-store"}
    )


def page_routes() -> list[Route | Mount]:
    """The page, what it shows besides the socket, and its static files."""
    return [
        Route("/leaderboards/{competition_id}", leaderboard_page, methods=["GET"]),
        Route("/leaderboards/{competition_id}/about", leaderboard_about, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
