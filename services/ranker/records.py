"""Decoding ``score-events`` records into the ranker's plain events, without a model per record.

Validating every record with the pydantic topic model cost about 2.7 µs, a tenth of the whole
per-event budget. Records written by ingest all have one shape, so a fast path takes exactly
that shape (``kind`` score, identifiers, a finite number, ISO 8601 times with an offset,
scalar metadata) from ``orjson`` into a :class:`Score` tuple, validating only what the rules
rely on. Anything else (a control event, another time format, a string value, a bad record)
goes to the pydantic model as before, which decides: the fast path only accepts records the
model accepts, with the same values, so decoding and dead letters are what they were (and a
replayed record decodes the same way, whichever path it takes).

Decoded messages are read through the :class:`ScoreMessage` / :class:`ControlMessage`
protocols, which the pydantic models satisfy too.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, NamedTuple, Protocol

import orjson
from pydantic import ValidationError

from shared.schemas.score_event import ControlAction, MetadataValue, parse_topic_message

_loads = orjson.loads
RecordHeaders = Sequence[tuple[str, bytes]]
"""A Kafka record's headers as aiokafka hands them over."""
_IDENTIFIER_CHARACTERS = string.ascii_letters + string.digits + "_.:-"
"""``shared.schemas.identifiers.IDENTIFIER_PATTERN``'s characters: an identifier is 1 to
``MAX_IDENTIFIER`` of them (``text.strip(these)`` is empty exactly then)."""
MAX_IDENTIFIER = 64
_NO_METADATA: dict[str, MetadataValue] = {}
# the subset of ISO 8601 both pydantic and datetime.fromisoformat parse to the same instant
_is_canonical_time = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)"
).fullmatch
_SCALARS = (str, int, float, bool, type(None))
_LARGEST_EXACT_FLOAT = 2.0**63  # orjson reads integers beyond 64 bits as floats, pydantic not
CACHE_ENTRIES = 65_536
"""Bound of each decode cache (times and identifiers repeat: a batch POST shares its
received_at, competitions and users recur); a full cache is simply cleared."""


class ScoreMessage(Protocol):
    """A score as the ranker reads it (a :class:`Score` or the pydantic ``ScoreEvent``)."""

    @property
    def kind(self) -> Literal["score"]: ...
    @property
    def event_id(self) -> str: ...
    @property
    def competition_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def metadata(self) -> dict[str, MetadataValue]: ...
    @property
    def team_id(self) -> str | None: ...


class ControlMessage(Protocol):
    """A control event as the ranker reads it (the pydantic ``ControlEvent``)."""

    @property
    def kind(self) -> Literal["control"]: ...
    @property
    def event_id(self) -> str: ...
    @property
    def action(self) -> ControlAction: ...
    @property
    def competition_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...


Message = ScoreMessage | ControlMessage


class Score(NamedTuple):
    """A decoded score (the fields of ``shared.schemas.score_event.ScoreEvent``)."""

    event_id: str
    competition_id: str
    user_id: str
    value: float
    ts: datetime
    received_at: datetime
    metadata: dict[str, MetadataValue]
    kind: Literal["score"] = "score"
    team_id: str | None = None


class IncomingEvent(NamedTuple):
    """One record of the batch: where it came from, its raw bytes and what they decoded to,
    and its headers (the request id and trace context ingest wrote; a dead letter keeps
    them)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    message: Message | None
    decode_error: str = ""
    headers: RecordHeaders = ()


_times: dict[str, datetime] = {}
_identifiers: set[str] = set()
_new = tuple.__new__  # NamedTuples without their Python-level __new__ (hot path)


def decode(
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: RecordHeaders = (),
) -> IncomingEvent:
    """Decode one record; an undecodable one keeps its error for the dead-letter header.

    ``headers`` are kept as they are (a reference, nothing parsed: the request id and trace
    context are read only for the events a line or span is about)."""
    raw = value if value is not None else b""
    message: Message | None = _fast_score(raw)
    if message is None:
        try:
            message = parse_topic_message(raw)
        except (ValidationError, ValueError) as error:
            return IncomingEvent(partition, offset, key, raw, None, str(error)[:500], headers)
    return _new(IncomingEvent, (partition, offset, key, raw, message, "", headers))


def _fast_score(raw: bytes) -> Score | None:
    """The score in ``raw`` when it has ingest's exact shape, else None (the model decides).

    Written for the interpreter: every check is a subscript, a type test or a cache hit
    (this runs once per record; the model costs about as much as ``orjson.loads`` twice).
    """
    try:
        data = _loads(raw)
        if data["kind"] != "score":
            return None
        event_id = data["event_id"]
        competition_id = data["competition_id"]
        user_id = data["user_id"]
        number = data["value"]
        ts = _times.get(data["ts"]) or _time(data["ts"])
        received_at = _times.get(data["received_at"]) or _time(data["received_at"])
        version = data.get("v", 1)
        metadata = data.get("metadata", _NO_METADATA)
        team_id = data.get("team_id")
    except (orjson.JSONDecodeError, KeyError, TypeError):  # TypeError: not an object
        return None
    if (
        ts is None
        or received_at is None
        or type(version) is not int
        or version != 1
        or type(event_id) is not str
        or not 0 < len(event_id) <= MAX_IDENTIFIER
        or event_id.strip(_IDENTIFIER_CHARACTERS)
        or type(competition_id) is not str
        or not (competition_id in _identifiers or _new_identifier(competition_id))
        or type(user_id) is not str
        or not (user_id in _identifiers or _new_identifier(user_id))
        or (
            team_id is not None
            and (
                type(team_id) is not str
                or not (team_id in _identifiers or _new_identifier(team_id))
            )
        )
    ):
        return None
    if type(number) is float:
        if number - number != 0.0:  # not finite (orjson never reads NaN or infinity; safe)
            return None
    elif type(number) is int:
        number = float(number)  # as pydantic: float(int), rounded alike
    else:
        return None
    if metadata is _NO_METADATA:
        metadata = {}
    elif type(metadata) is not dict or (metadata and not _scalar_values(metadata)):
        return None
    return _new(
        Score,
        (event_id, competition_id, user_id, number, ts, received_at, metadata, "score", team_id),
    )


def _scalar_values(metadata: dict[str, object]) -> bool:
    """Whether every metadata value is one pydantic reads the same way (scalars; a float
    that may be an integer beyond 64 bits, which orjson reads as a float, is left to it)."""
    for item in metadata.values():
        if not isinstance(item, _SCALARS):
            return False
        if type(item) is float and abs(item) >= _LARGEST_EXACT_FLOAT:
            return False
    return True


def _new_identifier(text: str) -> bool:
    """Whether ``text`` is an identifier; remembered when it is (competition and user ids
    recur, event ids do not and are checked each time)."""
    if not 0 < len(text) <= MAX_IDENTIFIER:
        return False
    if text.strip(_IDENTIFIER_CHARACTERS):
        return False
    if len(_identifiers) >= CACHE_ENTRIES:
        _identifiers.clear()
    _identifiers.add(text)
    return True


def _time(text: object) -> datetime | None:
    """The offset-aware time ``text`` names when it is canonical ISO 8601, else None
    (``YYYY-MM-DDTHH:MM:SS``, up to 6 fraction digits, then ``Z`` or ``±HH:MM``: the form both
    pydantic and ``datetime.fromisoformat``, which checks the digits, read alike)."""
    if type(text) is not str or not _is_canonical_time(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(_times) >= CACHE_ENTRIES:
        _times.clear()
    _times[text] = moment
    return moment
