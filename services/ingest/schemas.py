"""Request and response bodies of the ingest API (the topic's wire models are in shared)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.competition import Competition
from shared.schemas.score_event import ControlAction, ScoreEventIn


class ScoreBatchIn(BaseModel):
    """Body of ``POST /api/v1/scores/batch`` (items are validated one by one)."""

    model_config = ConfigDict(extra="forbid")

    # ``| Any``: an item that is no ScoreEventIn does not fail the request, it gets its own
    # ``rejected`` result in the 202, and the document has to say so
    events: list[ScoreEventIn | Any] = Field(
        min_length=1,
        description="Score events (ScoreEventIn). Each is validated on its own: one that does "
        "not match is rejected in the results of the 202, not the whole batch.",
    )


class ScoreAccepted(BaseModel):
    """202 of ``POST /api/v1/scores``: the broker holds the event."""

    status: Literal["accepted"] = "accepted"
    event_id: str
    received_at: datetime


class EventResult(BaseModel):
    """The outcome of one batch item, at the same ``index`` as in the request.

    A rejected item names the ``reason`` (``validation_failed``, ``forbidden``,
    ``unknown_competition``, ``not_started``, ``ended``, ``beyond_dedup_horizon``,
    ``ts_outside_competition``, ``above_max_value``, ``not_joined``, ``attempts_exhausted``),
    the first offending ``field`` and, for
    schema errors, every problem in ``details``.
    """

    index: int
    event_id: str | None = Field(
        None, description="The item's event_id; absent when the item has no usable one."
    )
    status: Literal["accepted", "rejected"]
    reason: str | None = None
    field: str | None = None
    message: str | None = None
    details: list[dict[str, Any]] | None = None


class BatchAccepted(BaseModel):
    """202 of ``POST /api/v1/scores/batch``: per-item results."""

    accepted: int
    rejected: int
    received_at: datetime
    results: list[EventResult]


class CompetitionPage(BaseModel):
    """A page of competitions ordered by id; ``next_after`` continues it (None: last page)."""

    competitions: list[Competition]
    next_after: str | None


class ControlAccepted(BaseModel):
    """202 of the admin user actions: the control event is on the topic."""

    status: Literal["accepted"] = "accepted"
    event_id: str
    action: ControlAction
    competition_id: str
    user_id: str
