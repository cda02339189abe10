"""The leaderboard WebSocket protocol: query parameters, frames and close codes.

Server → client (JSON text frames):

- ``{"type": "snapshot", "competition_id", "window", "version", "top": [entry...], "me"?}``
- ``{"type": "update", "version", "top"?, "me"?}`` — only the parts that changed; here an
  entry also carries ``previous_rank`` and ``me`` (when not null) ``previous_rank`` too (see
  below);
- ``{"type": "error", "error": {"code", "message", "details"?}}`` — a refused request.

An entry is ``{"rank", "user_id", "score"}``; ``me`` (only with ``?user=``) is
``{"rank", "score"}`` or ``null`` while the user is not ranked. Ranks follow the
competition's ``rank_style`` (unique 1234, standard 1224, dense 1223).

Movement (update frames only): an entry's ``previous_rank`` is its rank in the previous
version of the board's top this notifier pushed (null when it was not in that top: it just
entered); ``me.previous_rank`` is the rank in the last ``me`` sent to this socket (null when
that ``me`` was null: the user just got ranked). Equal to ``rank``: it did not move.

Client → server: ``{"type": "resync"}`` (answered by a fresh snapshot) and ``{"type": "ping"}``
(answered by ``{"type": "pong"}``). Anything else is answered by an error frame; a client
that sends faster than its rate limit, or a message above ``PODIUM_WS_MAX_MESSAGE_BYTES``, is
closed (1008, 1009). When the competition is deleted, its sockets are closed with 4404
``competition deleted``. A connect over the connect rate limit (``PODIUM_WS_CONNECT_*``, per
token subject, else per client address) is accepted, sent an error frame ``rate_limited``
(``details.retry_after_s``) and closed with 1013 ``rate limited; retry in N s``; the page and
the other HTTP routes answer 429 with ``Retry-After`` from the same buckets.

Authentication: ``Sec-WebSocket-Protocol: bearer, <token>`` (the server then accepts the
``bearer`` subprotocol, which browsers require it to echo) or ``?token=<token>``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadRequestError, PodiumError, ValidationFailedError
from shared.http.errors import validation_details
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.identifiers import Identifier

BEARER_SUBPROTOCOL = "bearer"

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013
CLOSE_DELETED = 4404
"""The competition was deleted (``DELETE /api/v1/competitions/{cid}``): reason
``competition deleted``. A private-use code (4000-4999): reconnecting gets 1008 not_found."""
_MAX_REASON_BYTES = 123


class SubscribeParams(BaseModel):
    """The query parameters of ``/ws/leaderboards/{cid}`` (the page uses the same)."""

    model_config = ConfigDict(extra="ignore")

    window: str = Field("alltime", min_length=1, max_length=32)
    user: Identifier | None = None
    top: int = Field(10, ge=1)
    token: str | None = Field(None, max_length=4096)
    board: Literal["users", "teams"] = Field(
        "users",
        description="`teams`: the competition's team board (entries' `user_id` holds the team"
        " id, `?user=` names a team); 1008 not_found without one.",
    )


class ClientMessage(BaseModel):
    """A message a client may send."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(pattern="^(resync|ping)$")


def parse_params(query: dict[str, str], max_top: int) -> SubscribeParams:
    """Validate the query parameters; 422 naming the field when one is bad."""
    try:
        params = SubscribeParams.model_validate(query)
    except ValidationError as error:
        raise ValidationFailedError(
            "invalid subscription parameters", details=validation_details(error, prefix=("query",))
        ) from error
    if params.top > max_top:
        raise ValidationFailedError(
            f"top must be between 1 and {max_top}",
            details=[
                {"field": "query.top", "message": f"at most {max_top}", "type": "less_than_equal"}
            ],
        )
    return params


@functools.lru_cache(maxsize=1024)
def parse_query_string(query_string: bytes, max_top: int) -> SubscribeParams:
    """:func:`parse_params` of a raw query string, as starlette decodes it (last value of a
    repeated name wins), remembered per distinct string: the clients of a reconnect storm
    send the same few, and each would otherwise be split and validated again. Refusals are
    not remembered (the error is raised each time)."""
    return parse_params(
        dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)), max_top
    )


def parse_client_message(text: str) -> ClientMessage:
    """Parse one client frame; 400 for bad JSON, 422 for an unknown shape."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise BadRequestError("messages must be JSON objects") from error
    try:
        return ClientMessage.model_validate(raw)
    except ValidationError as error:
        raise ValidationFailedError(
            'unknown message; send {"type": "resync"} or {"type": "ping"}',
            details=validation_details(error, prefix=("message",)),
        ) from error


class Unset:
    """Marker: no previous ``me`` to report (snapshot frames carry no movement)."""


UNSET: Final = Unset()


@dataclass(frozen=True, slots=True)
class Me:
    """What a user-scoped client sees of its user: rank and score, or nothing (not ranked)."""

    rank: int
    score: float


def me_of(entry: LeaderboardEntry | None) -> Me | None:
    """The ``me`` view of a leaderboard entry."""
    return None if entry is None else Me(rank=entry.rank, score=entry.score)


def top_json(entries: list[LeaderboardEntry], previous: Mapping[str, int] | None = None) -> str:
    """A top list as JSON text (computed once per fan-out and shared by every client).

    With ``previous`` (user id -> rank in the previous version of the top; update frames),
    each entry carries its ``previous_rank`` (null: not in that top).
    """
    if previous is None:
        return orjson.dumps(
            [{"rank": e.rank, "user_id": e.user_id, "score": e.score} for e in entries]
        ).decode()
    return orjson.dumps(
        [
            {
                "rank": e.rank,
                "user_id": e.user_id,
                "score": e.score,
                "previous_rank": previous.get(e.user_id),
            }
            for e in entries
        ]
    ).decode()


def _me_json(me: Me | None, previous: Me | Unset | None = UNSET) -> str:
    if me is None:
        return "null"
    if isinstance(previous, Unset):
        return orjson.dumps({"rank": me.rank, "score": me.score}).decode()
    previous_rank = None if previous is None else previous.rank
    return orjson.dumps(
        {"rank": me.rank, "score": me.score, "previous_rank": previous_rank}
    ).decode()


def snapshot_frame(
    competition_id: str, window: str, version: int, top: str, me: Me | None, with_me: bool
) -> str:
    """The first frame of a subscription (and the answer to a resync)."""
    head = orjson.dumps(
        {"type": "snapshot", "competition_id": competition_id, "window": window, "version": version}
    ).decode()[:-1]
    tail = f',"me":{_me_json(me)}' if with_me else ""
    return f'{head},"top":{top}{tail}}}'


def update_frame(
    version: int, top: str | None, me: Me | None, with_me: bool, previous_me: Me | None = None
) -> str:
    """An update carrying only what changed (``top`` None: unchanged); ``previous_me`` is the
    ``me`` last sent to this socket (its rank is ``me.previous_rank``)."""
    parts = [f'{{"type":"update","version":{version}']
    if top is not None:
        parts.append(f',"top":{top}')
    if with_me:
        parts.append(f',"me":{_me_json(me, previous_me)}')
    parts.append("}")
    return "".join(parts)


@functools.lru_cache(maxsize=64)
def top_update_frame(version: int, top: str) -> str:
    """``update_frame(version, top, None, False)``, built once per (version, top).

    Every client without ``?user=`` of one fan-out gets the very same text: 10,000
    subscribers share one string instead of building 10,000 copies of it.
    """
    return update_frame(version, top, None, False)


@functools.lru_cache(maxsize=64)
def top_snapshot_frame(competition_id: str, window: str, version: int, top: str) -> str:
    """``snapshot_frame(...)`` of a client without ``?user=``, built once per (version, top).

    Every top-only client connecting at one room version gets the same text (and so the
    same encoded frame bytes): a reconnect storm of 10,000 clients builds it once.
    """
    return snapshot_frame(competition_id, window, version, top, None, False)


def error_frame(error: PodiumError) -> str:
    """An error frame with the standard error body."""
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.details is not None:
        body["details"] = error.details
    return orjson.dumps({"type": "error", "error": body}).decode()


PONG_FRAME = '{"type":"pong"}'


def close_reason(text: str) -> str:
    """``text`` cut to the 123 bytes a close frame allows."""
    encoded = text.encode()
    if len(encoded) <= _MAX_REASON_BYTES:
        return text
    return encoded[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."
