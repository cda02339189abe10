"""Messages on the ``score-events`` topic: scores and, in the same order, control events.

Both are keyed by ``competition_id`` so one competition's events stay in one partition, in
order. The wire format is JSON with a ``v`` (schema version) and a ``kind`` discriminator.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from shared.schemas.identifiers import Identifier
from shared.schemas.timestamps import IsoDatetime

MAX_METADATA_KEYS = 16
MAX_METADATA_BYTES = 1024

MetadataValue = str | int | float | bool | None


SMALLEST_METADATA_INT = -(2**63)
LARGEST_METADATA_INT = 2**64 - 1
"""Integers in metadata stay within what orjson encodes (signed or unsigned 64 bits): the
ranker writes metadata to PostgreSQL through orjson, so a larger one would fail every retry of
its batch. Ingest never publishes one (its JSON parser, orjson, reads a larger integer as a
float); a record from another producer that carries one is dead-lettered as undecodable."""


def _check_integers(metadata: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
    for value in metadata.values():
        if type(value) is int and not SMALLEST_METADATA_INT <= value <= LARGEST_METADATA_INT:
            raise ValueError("integers must fit in 64 bits")
    return metadata


def _check_metadata(metadata: dict[str, MetadataValue]) -> dict[str, MetadataValue]:
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValueError(f"at most {MAX_METADATA_KEYS} keys")
    for value in metadata.values():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("values must be finite")
    _check_integers(metadata)
    if len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        raise ValueError(f"at most {MAX_METADATA_BYTES} bytes as JSON")
    return metadata


RESERVED_TEAM_ID = "top"
"""``GET .../teams/top`` is the team board's page, so no team may be called that."""


class ScoreEventIn(BaseModel):
    """One score as a producer posts it."""

    model_config = ConfigDict(extra="forbid")

    event_id: Identifier = Field(description="The producer's idempotency key.")
    competition_id: Identifier
    user_id: Identifier
    value: float = Field(allow_inf_nan=False)
    ts: IsoDatetime | None = Field(None, description="Event time; the receive time if absent.")
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    team_id: Identifier | None = Field(
        None,
        description="The user's team from this event on (competitions with a team board;"
        " ignored, but kept with the event, elsewhere). Not `top` (the team board's page).",
    )

    _metadata = field_validator("metadata")(_check_metadata)

    @field_validator("team_id")
    @classmethod
    def _not_a_route(cls, value: str | None) -> str | None:
        if value == RESERVED_TEAM_ID:
            raise ValueError(f"{RESERVED_TEAM_ID!r} names the team board's page, not a team")
        return value

    @field_validator("value", mode="before")
    @classmethod
    def _no_bool(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")
        return value


class ScoreEvent(BaseModel):
    """A score on the topic (schema v1)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    kind: Literal["score"] = "score"
    event_id: Identifier
    competition_id: Identifier
    user_id: Identifier
    value: float = Field(allow_inf_nan=False)
    ts: AwareDatetime
    received_at: AwareDatetime
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    team_id: Identifier | None = None

    # only the bound that keeps a record writable: other producers' records are otherwise
    # taken as they are (the ranker's fast decode path accepts exactly what this model does)
    _metadata = field_validator("metadata")(_check_integers)


class ControlAction(StrEnum):
    """What an admin control event does to a user in a competition."""

    REMOVE_USER = "remove_user"
    BAN_USER = "ban_user"


class ControlEvent(BaseModel):
    """An admin action that must apply in order with the scores (schema v1).

    ``remove_user`` erases the user's standings in every window; ``ban_user`` does that too
    and keeps the user's later events out (dead-lettered as ``banned``).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = 1
    kind: Literal["control"] = "control"
    event_id: Identifier
    action: ControlAction
    competition_id: Identifier
    user_id: Identifier
    received_at: AwareDatetime
    requested_by: str = ""


TopicMessage = Annotated[ScoreEvent | ControlEvent, Field(discriminator="kind")]
_topic_message_adapter: TypeAdapter[ScoreEvent | ControlEvent] = TypeAdapter(TopicMessage)


def parse_topic_message(raw: bytes) -> ScoreEvent | ControlEvent:
    """Decode one ``score-events`` record (raises ``pydantic.ValidationError``)."""
    return _topic_message_adapter.validate_json(raw)


def encode_topic_message(message: ScoreEvent | ControlEvent) -> bytes:
    """Encode one ``score-events`` record as compact JSON (a score without a team carries no
    ``team_id``, as ingest writes it)."""
    if isinstance(message, ScoreEvent) and message.team_id is None:
        return message.model_dump_json(exclude={"team_id"}).encode()
    return message.model_dump_json().encode()


def event_time(message: ScoreEvent | ControlEvent) -> datetime:
    """When the event happened (control events: when the request was received)."""
    return message.ts if isinstance(message, ScoreEvent) else message.received_at
