"""``GET /leaderboards/{cid}``: the live leaderboard page (static HTML + vanilla JS).

The page is the same file for every competition (the script reads the id from the URL), so
nothing user-controlled is rendered on the server. It gets its own Content-Security-Policy:
its script and stylesheet from this origin, and WebSockets to this host.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from services.notifier import protocol
from shared.errors import NotFoundError
from shared.schemas.identifiers import IDENTIFIER_PATTERN

STATIC_DIR = Path(__file__).resolve().parent / "static"
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def page_csp(host: str | None) -> str:
    """The page's policy; ``connect-src`` names this host's ws:/wss: origins exactly."""
    connect = "'self'"
    if host and _HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


async def leaderboard_page(request: Request) -> Response:
    """The page for one competition (unknown or private ones are reported by the socket)."""
    competition_id = request.path_params["competition_id"]
    if not _IDENTIFIER.match(competition_id):
        raise NotFoundError("no such leaderboard", details={"field": "path.competition_id"})
    # the script hands these to the socket: a bad one is a 422 naming it now, not a page
    # that loads and then fails
    protocol.parse_params(dict(request.query_params), request.app.state.settings.ranker_top_n)
    return FileResponse(
        STATIC_DIR / "leaderboard.html",
        media_type="text/html; charset=utf-8",
        headers={
            "content-security-policy": page_csp(request.headers.get("host")),
            "cache-control": "no-cache",
        },
    )


def page_routes() -> list[Route | Mount]:
    """The page and its static files."""
    return [
        Route("/leaderboards/{competition_id}", leaderboard_page, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
