"""``/ws/leaderboards/{cid}``: admit (capacity, auth, parameters), subscribe, serve, close.

Every refusal completes the handshake first and then closes, so the client sees the close
code and reason (a refused handshake would only show an HTTP 403):

- over the connect rate limit (``PODIUM_WS_CONNECT_*``: per token subject, else per client
  address; checked first, before any other work) → an error frame ``rate_limited`` whose
  details name ``retry_after_s``, then 1013 "rate limited; retry in N s";
- at ``PODIUM_WS_MAX_CONNECTIONS`` → 1013 "server at capacity";
- no/bad token on a private competition, or a token without ``leaderboards:read`` → 1008,
  and nothing else is sent;
- bad parameters or an unknown competition → an error frame naming the field, then 1008;
- PostgreSQL down and the competition not cached (or any other failure) → 1013 "temporarily
  unavailable".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketState

from services.notifier import metrics, protocol
from services.notifier.connection import ClientConnection, Closing, Subscription
from services.notifier.hub import Hub
from services.notifier.repository import NotifierRepository
from services.notifier.settings import NotifierSettings
from shared.auth import Principal, Scope, verify_token
from shared.errors import (
    AuthenticationError,
    DependencyUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    PodiumError,
    UpgradeRequiredError,
    ValidationFailedError,
)
from shared.rate_limit.policy import RateLimitExceededError
from shared.rate_limit.readers import ReadLimits
from shared.schemas.competition import Competition, Visibility
from shared.schemas.identifiers import IDENTIFIER_PATTERN
from shared.teams import required_team_board
from shared.windows import CURRENT, is_valid_window, resolve_window

logger = logging.getLogger(__name__)

_AUTH_ERRORS = (AuthenticationError, PermissionDeniedError)
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
# How long a closing handler waits for a stuck client to drain so it can read the close frame
# (after that the transport is closed without it).
_CLOSE_GRACE_S = 5.0
_UNAVAILABLE = Closing(protocol.CLOSE_TRY_AGAIN, "temporarily unavailable", "unavailable")


def offered_token(websocket: WebSocket, query_token: str | None) -> tuple[str | None, str | None]:
    """The token and the subprotocol to accept: ``bearer, <token>`` in Sec-WebSocket-Protocol
    wins over ``?token=``."""
    offered: list[str] = list(websocket.scope.get("subprotocols") or [])
    if protocol.BEARER_SUBPROTOCOL in offered:
        position = offered.index(protocol.BEARER_SUBPROTOCOL)
        if position + 1 >= len(offered):
            raise AuthenticationError("the 'bearer' subprotocol must be followed by the token")
        return offered[position + 1], protocol.BEARER_SUBPROTOCOL
    return query_token, None


async def readable_competition(
    repository: NotifierRepository,
    competition_id: str,
    principal: Principal | None,
    window: str,
) -> Competition:
    """The competition a socket or the live page may read, ``window`` being one of its windows;
    raise what the client is told otherwise: 404 unknown, 401/403 private without a token or
    the scope, 400 a window its reset does not have."""
    competition = await repository.competition(competition_id)
    if competition is None:
        raise NotFoundError(
            f"competition {competition_id!r} does not exist",
            details={"field": "path.competition_id"},
        )
    if competition.visibility is Visibility.PRIVATE:
        if principal is None:
            raise AuthenticationError("this leaderboard is private: a token is required")
        principal.require(Scope.LEADERBOARDS_READ)
    if not is_valid_window(competition.reset, window):
        raise ValidationFailedError(
            f"window {window!r} does not exist for a {competition.reset.value!r} reset",
            details=[{"field": "query.window", "message": "unknown window", "type": "value_error"}],
        )
    return competition


async def admit(
    websocket: WebSocket, settings: NotifierSettings, repository: NotifierRepository
) -> Subscription:
    """Check the request; raise a :class:`PodiumError` saying why it is refused."""
    params = protocol.parse_query_string(websocket.scope["query_string"], settings.ranker_top_n)
    token, _ = offered_token(websocket, params.token)
    principal: Principal | None = verify_token(settings, token) if token else None
    competition_id = websocket.path_params["competition_id"]
    if not _IDENTIFIER.fullmatch(competition_id):
        # checked before the lookup: a NUL would make PostgreSQL fail (and every odd id would
        # take a slot in the competition cache)
        raise ValidationFailedError(
            "path parameter 'competition_id' is not a valid identifier",
            details=[
                {
                    "field": "path.competition_id",
                    "message": f"must match {IDENTIFIER_PATTERN}",
                    "type": "string_pattern_mismatch",
                }
            ],
        )
    competition = await readable_competition(repository, competition_id, principal, params.window)
    window = resolve_window(competition.reset, params.window, _now(), competition.timezone)
    if params.board == "teams":
        competition = team_board_of(competition)
    return Subscription(
        competition=competition,
        requested_window=CURRENT if params.window == CURRENT else window,
        window=window,
        user_id=params.user,
        top_count=params.top,
    )


def team_board_of(competition: Competition) -> Competition:
    """The competition's team board (its room, keys and change messages); not found when
    the competition has none."""
    return required_team_board(competition, "query.board")


def _now() -> datetime:
    return datetime.now(UTC)


async def upgrade_required(request: Request) -> Response:
    """A plain HTTP request on the socket's path: 426 saying how to connect (not a bare 404)."""
    raise UpgradeRequiredError(
        "this endpoint speaks WebSocket: send the upgrade handshake",
        details={"upgrade": "websocket"},
    )


async def leaderboard_socket(websocket: WebSocket) -> None:
    """The WebSocket endpoint (see the module docstring and :mod:`protocol`)."""
    app_state = websocket.app.state
    settings: NotifierSettings = app_state.settings
    hub: Hub = app_state.hub
    repository: NotifierRepository = app_state.repository
    if not await _charged(websocket, app_state.read_limits):
        return
    if not hub.try_acquire():
        await _refuse(
            websocket, None, Closing(protocol.CLOSE_TRY_AGAIN, "server at capacity", "capacity")
        )
        return
    try:
        await _serve(websocket, settings, hub, repository)
    finally:
        hub.release()


async def _charged(websocket: WebSocket, limits: ReadLimits) -> bool:
    """Charge the connect to the caller's bucket; refused: an error frame naming
    ``retry_after_s``, then 1013 (see the module docstring). False when refused."""
    try:
        token, subprotocol = offered_token(websocket, _query_token(websocket))
    except AuthenticationError:
        token, subprotocol = None, None
    try:
        await limits.charge(websocket, token)
    except RateLimitExceededError as refused:
        reason = f"rate limited; retry in {math.ceil(refused.retry_after_s)} s"
        closing = Closing(protocol.CLOSE_TRY_AGAIN, reason, "rate_limited")
        await _refuse(websocket, subprotocol, closing, protocol.error_frame(refused))
        return False
    return True


def _query_token(websocket: WebSocket) -> str | None:
    """``?token=`` without validating the other parameters (that comes after the charge)."""
    query_string: bytes = websocket.scope["query_string"]
    tokens = [v for k, v in parse_qsl(query_string.decode("latin-1")) if k == "token"]
    return tokens[-1] if tokens else None  # the last one, as the parameters' parser takes


async def _serve(
    websocket: WebSocket, settings: NotifierSettings, hub: Hub, repository: NotifierRepository
) -> None:
    try:
        subprotocol = offered_token(websocket, None)[1]
    except AuthenticationError:
        subprotocol = None
    try:
        subscription = await admit(websocket, settings, repository)
    except DependencyUnavailableError as error:
        # PostgreSQL is down and the competition was never cached (the cache logged it): the
        # client may retry, so no policy close
        logger.warning("admitting a WebSocket failed: %s", error.message)
        await _refuse(websocket, subprotocol, _UNAVAILABLE)
        return
    except PodiumError as error:
        closing = Closing(
            protocol.CLOSE_POLICY,
            protocol.close_reason(f"{error.code}: {error.message}"),
            _label(error),
        )
        frame = None if isinstance(error, _AUTH_ERRORS) else protocol.error_frame(error)
        await _refuse(websocket, subprotocol, closing, frame)
        return
    except Exception:
        logger.exception("admitting a WebSocket failed")
        await _refuse(websocket, subprotocol, _UNAVAILABLE)
        return
    await websocket.accept(subprotocol=subprotocol)
    client = ClientConnection(websocket, subscription, settings, repository)
    hub.join(client)
    try:
        ending = await client.serve()
    finally:
        await hub.leave(client)
    if ending is None:
        metrics.CLOSES.labels("client").inc()
        return
    metrics.CLOSES.labels(ending.label).inc()
    await _close(websocket, ending, grace_s=max(settings.ws_send_timeout, _CLOSE_GRACE_S))


async def _refuse(
    websocket: WebSocket, subprotocol: str | None, closing: Closing, frame: str | None = None
) -> None:
    metrics.CLOSES.labels(closing.label).inc()
    await websocket.accept(subprotocol=subprotocol)
    if frame is not None:
        with contextlib.suppress(Exception):
            await websocket.send_text(frame)
            metrics.messages_sent("error").inc()
    await _close(websocket, closing, grace_s=1.0)


async def _close(websocket: WebSocket, closing: Closing, *, grace_s: float) -> None:
    """Send the close frame; a stuck client gets ``grace_s`` to drain before we give up."""
    if websocket.application_state is WebSocketState.DISCONNECTED:
        return
    with contextlib.suppress(Exception):
        async with asyncio.timeout(grace_s):
            await websocket.close(closing.code, closing.reason)


def _label(error: PodiumError) -> str:
    if isinstance(error, AuthenticationError):
        return "unauthenticated"
    if isinstance(error, PermissionDeniedError):
        return "forbidden"
    if isinstance(error, NotFoundError):
        return "not_found"
    return "invalid"
