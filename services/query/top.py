"""``GET /api/v1/leaderboards/{cid}/top``: the hot path, as a raw ASGI endpoint.

A hit of the micro-cache for a public competition costs a header scan, two dict lookups and
two ``send`` calls: no Request/Response objects, no query-string parsing (the raw query
string is part of the cache key), no Redis. Everything else (private competitions, tokens,
misses) takes the ordinary path.

Cursor stability: a cursor names the last entry served (its score and tie-break member),
signed so it cannot be forged. The next page starts right after that entry in the ranking
*as it is when the next page is read*. So users whose standing does not change between page
reads appear exactly once across the pages, with no gap; a user who moves across the page
boundary meanwhile may be missed (moved up into pages already read) or seen twice (moved down
into pages not yet read), as in any live ranking. Unlike an offset, a change above the
boundary never shifts unrelated users into a repeat or a gap. A cursor is bound to its
competition and window parameter (``current`` stays on the period it started in).

``prev_cursor`` names the first entry served; the page it opens ends right before that entry,
with the same guarantee mirrored (at the top it is the first page). ``from_rank=N`` opens the
page at the first entry ranked N or worse in the competition's rank style (a rank shared by
a tie starts at the tie's first entry; a rank a tie skipped starts at the next one).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from services.query.signed_cursor import decode_cursor, encode_cursor
from shared.errors import BadRequestError, DependencyUnavailableError
from shared.http.representation import RawHeaders, Representation
from shared.schemas.competition import Competition, Visibility
from shared.windows import ALLTIME, resolve_window

from . import params
from .context import QueryContext
from .leaderboards import Anchor
from .metrics import PAGE_CACHE_HIT, PAGE_CACHE_MISS, PAGE_CACHE_STALE
from .page_cache import PageKey
from .routes import entry_dict, readable
from .teams import board_of

TOP_PATH = "/api/v1/leaderboards/{cid}/top"
TEAMS_TOP_PATH = "/api/v1/leaderboards/{cid}/teams/top"
_PUBLIC: RawHeaders = [(b"cache-control", b"public, no-cache")]
_PRIVATE: RawHeaders = [(b"cache-control", b"private, no-cache")]
_STALE: RawHeaders = [(b"x-podium-stale", b"true")]
_FORWARD, _BACKWARD = "n", "p"  # a cursor's direction: the page after / before its anchor


class TopPages:
    """The top-page endpoint (an ASGI app routed by Starlette, errors handled as usual);
    ``teams``: the team board's pages (cached under the board id, entries name ``team_id``)."""

    def __init__(self, *, teams: bool = False) -> None:
        self.teams = teams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a page: from the micro-cache when fresh, else from Redis (then cached)."""
        context: QueryContext = scope["app"].state.query
        authorization = if_none_match = accept_encoding = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"accept-encoding":
                accept_encoding = value
        competition = context.catalog.cached(scope["path_params"]["cid"])
        if (
            competition is None
            or competition.visibility is not Visibility.PUBLIC
            or authorization is not None
        ):
            context, competition = await readable(Request(scope, receive))
        competition_id = competition.id
        if self.teams:
            competition = board_of(competition)
        headers = _PUBLIC if competition.visibility is Visibility.PUBLIC else _PRIVATE
        key: PageKey = (competition.id, scope["query_string"])
        page = context.pages.get(key)
        if page is not None:
            PAGE_CACHE_HIT.inc()
        else:
            PAGE_CACHE_MISS.inc()
            request = Request(scope, receive)
            # the flight is per generation: a request that arrives after a change was seen
            # must not share a read that started before it (it could predate the write)
            generation = context.pages.generation(competition.id)
            try:
                page = await context.page_flights.run(
                    (key, generation),
                    lambda: _render(context, request, competition, key, generation, competition_id),
                )
            except DependencyUnavailableError:
                page = context.pages.get_stale(key)
                if page is None:
                    raise
                PAGE_CACHE_STALE.inc()
                headers = [*headers, *_STALE]
        await page.send(
            send, if_none_match=if_none_match, accept_encoding=accept_encoding, headers=headers
        )


async def _render(
    context: QueryContext,
    request: Request,
    competition: Competition,
    key: PageKey,
    generation: int,
    competition_id: str,
) -> Representation:
    """Read the page from Redis and cache it as of ``generation`` (taken before the read, so
    a change seen meanwhile leaves the page retired)."""
    query = request.query_params
    limit = params.bounded_int(
        query, "limit", default=params.DEFAULT_LIMIT, minimum=1, maximum=params.MAX_LIMIT
    )
    window = params.window(query, competition)
    window_parameter = query.get("window", ALLTIME)
    cursor = query.get("cursor")
    from_rank: int | None = None
    if "from_rank" in query:
        if cursor:
            raise BadRequestError(
                "from_rank and cursor cannot be combined: a cursor already says where to start",
                details={"field": "from_rank"},
            )
        from_rank = params.bounded_int(
            query, "from_rank", default=1, minimum=1, maximum=params.MAX_FROM_RANK
        )
    anchor: Anchor | None = None
    backward = False
    if cursor:
        resolved, anchor, backward = _open_cursor(context, competition, window_parameter, cursor)
    else:
        resolved = resolve_window(
            competition.reset, window, datetime.now(UTC), competition.timezone
        )
    page = await context.reader.page(
        competition, resolved, anchor, limit, backward=backward, from_rank=from_rank
    )

    def signed(anchor: Anchor | None, direction: str) -> str | None:
        if anchor is None:
            return None
        payload = {"c": competition.id, "w": window_parameter, "r": resolved}
        payload |= {"s": anchor.score, "m": anchor.member, "d": direction}
        return encode_cursor(payload, context.settings.signing_secret)

    if competition.id == competition_id:
        entries = [entry_dict(e.rank, e.user_id, e.score) for e in page.entries]
    else:  # the team board
        entries = [{"rank": e.rank, "team_id": e.user_id, "score": e.score} for e in page.entries]
    representation = Representation.of(
        {
            "competition_id": competition_id,
            "window": resolved,
            "total": page.total,
            "entries": entries,
            "next_cursor": signed(page.next_anchor, _FORWARD),
            "prev_cursor": signed(page.prev_anchor, _BACKWARD),
        }
    )
    context.pages.put(key, representation, generation)
    return representation


def _open_cursor(
    context: QueryContext, competition: Competition, window_parameter: str, cursor: str
) -> tuple[str, Anchor, bool]:
    """The resolved window, the anchor, and whether the page goes back from it."""
    payload = decode_cursor(cursor, context.settings.verification_secrets)
    competition_id, window, resolved, score, member = (
        payload.get(name) for name in ("c", "w", "r", "s", "m")
    )
    direction = payload.get("d", _FORWARD)  # cursors from before prev_cursor go forward
    if direction not in (_FORWARD, _BACKWARD):
        raise BadRequestError("cursor is invalid", details={"field": "cursor"})
    if competition_id != competition.id or window != window_parameter:
        raise BadRequestError(
            "cursor belongs to another leaderboard or window", details={"field": "cursor"}
        )
    if not (isinstance(resolved, str) and isinstance(score, str) and isinstance(member, str)):
        raise BadRequestError("cursor is invalid", details={"field": "cursor"})
    return resolved, Anchor(score=score, member=member), direction == _BACKWARD
