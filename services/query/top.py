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

TOP_PATH = "/api/v1/leaderboards/{cid}/top"
_PUBLIC: RawHeaders = [(b"cache-control", b"public, no-cache")]
_PRIVATE: RawHeaders = [(b"cache-control", b"private, no-cache")]
_STALE: RawHeaders = [(b"x-podium-stale", b"true")]


class TopPages:
    """The top-page endpoint (an ASGI app routed by Starlette, errors handled as usual)."""

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
                    lambda: _render(context, request, competition, key, generation),
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
    anchor: Anchor | None = None
    if cursor:
        resolved, anchor = _open_cursor(context, competition, window_parameter, cursor)
    else:
        resolved = resolve_window(
            competition.reset, window, datetime.now(UTC), competition.timezone
        )
    page = await context.reader.page(competition, resolved, anchor, limit)
    next_cursor = None
    if page.next_anchor is not None:
        next_cursor = encode_cursor(
            {
                "c": competition.id,
                "w": window_parameter,
                "r": resolved,
                "s": page.next_anchor.score,
                "m": page.next_anchor.member,
            },
            context.settings.signing_secret,
        )
    representation = Representation.of(
        {
            "competition_id": competition.id,
            "window": resolved,
            "entries": [entry_dict(e.rank, e.user_id, e.score) for e in page.entries],
            "next_cursor": next_cursor,
        }
    )
    context.pages.put(key, representation, generation)
    return representation


def _open_cursor(
    context: QueryContext, competition: Competition, window_parameter: str, cursor: str
) -> tuple[str, Anchor]:
    payload = decode_cursor(cursor, context.settings.verification_secrets)
    competition_id, window, resolved, score, member = (
        payload.get(name) for name in ("c", "w", "r", "s", "m")
    )
    if competition_id != competition.id or window != window_parameter:
        raise BadRequestError(
            "cursor belongs to another leaderboard or window", details={"field": "cursor"}
        )
    if not (isinstance(resolved, str) and isinstance(score, str) and isinstance(member, str)):
        raise BadRequestError("cursor is invalid", details={"field": "cursor"})
    return resolved, Anchor(score=score, member=member)
