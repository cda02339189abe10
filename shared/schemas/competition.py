"""Competitions: what is ranked, how, and when."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.schemas.identifiers import Identifier
from shared.schemas.timestamps import IsoDatetime


class SortOrder(StrEnum):
    """`desc`: higher is better; `asc`: lower is better (e.g. fastest time)."""

    DESC = "desc"
    ASC = "asc"


class Operator(StrEnum):
    """How a new event combines with the standing: keep the best, set, or add."""

    BEST = "best"
    LATEST = "latest"
    SUM = "sum"


class ResetSchedule(StrEnum):
    """Period windows kept besides all-time."""

    NONE = "none"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class RankStyle(StrEnum):
    """How equal scores are ranked; the order inside a tie is always first-reached, then id.

    ``unique``: every rank distinct (1, 2, 3, 4); ``standard``: equal scores share a rank and
    the next rank skips ("1224"); ``dense``: equal scores share a rank, no rank is skipped
    ("1223"). Costs per style: docs/performance.md ("Rank styles").
    """

    UNIQUE = "unique"
    STANDARD = "standard"
    DENSE = "dense"


class TeamAggregate(StrEnum):
    """How a team's score is made of its members' scores in a window."""

    SUM = "sum"
    BEST = "best"
    MEAN = "mean"


class TeamsSetting(BaseModel):
    """A competition's team board: members' standings add up per team and window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aggregate: TeamAggregate = Field(
        description="`sum` of the members' scores, the `best` one, or their `mean`."
    )


class Visibility(StrEnum):
    """`private` leaderboards need a `leaderboards:read` token."""

    PUBLIC = "public"
    PRIVATE = "private"


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {value!r}") from error
    return value


Metadata = dict[str, str | int | float | bool | None]

MAX_LIMIT = 2**31 - 1
"""The largest entrant or attempt limit (PostgreSQL ``integer``)."""
_JOIN_REQUIRED = (
    "Tournament: only entrants' scores count (`POST .../entrants` first); other scores are"
    " refused `not_joined`."
)
_TEAMS = (
    "A team board (null: none). Scores may carry `team_id`; a user's team is the `team_id` of"
    " their latest applied event carrying one. Set at creation only."
)
_MAX_ENTRANTS = "How many may join (null: no limit); a join beyond it is 409 `competition_full`."
_MAX_ATTEMPTS = (
    "How many score events of a user apply per window (the event's period, or all-time"
    " without a reset; null: no limit); later ones are refused `attempts_exhausted`."
)


class CompetitionCreate(BaseModel):
    """Body of ``POST /api/v1/competitions``."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    sort_order: SortOrder = SortOrder.DESC
    operator: Operator = Operator.BEST
    reset: ResetSchedule = ResetSchedule.NONE
    timezone: str = Field("UTC", max_length=64)
    starts_at: IsoDatetime | None = None
    ends_at: IsoDatetime | None = None
    max_value: float | None = Field(None, allow_inf_nan=False)
    visibility: Visibility = Visibility.PUBLIC
    rank_style: RankStyle = Field(
        RankStyle.UNIQUE,
        description="How equal scores are ranked: `unique` (1234, first to reach the score"
        " first), `standard` (1224) or `dense` (1223); applies to every read and push.",
    )
    metadata: Metadata = Field(default_factory=dict, max_length=16)
    join_required: bool = Field(False, description=_JOIN_REQUIRED)
    max_entrants: int | None = Field(None, ge=1, le=MAX_LIMIT, description=_MAX_ENTRANTS)
    max_attempts: int | None = Field(None, ge=1, le=MAX_LIMIT, description=_MAX_ATTEMPTS)
    teams: TeamsSetting | None = Field(None, description=_TEAMS)

    _tz = field_validator("timezone")(_check_timezone)

    @model_validator(mode="after")
    def _ends_after_start(self) -> CompetitionCreate:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class CompetitionUpdate(BaseModel):
    """Body of ``PATCH /api/v1/competitions/{id}``: only these fields may change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    ends_at: IsoDatetime | None = None
    max_value: float | None = Field(None, allow_inf_nan=False)
    visibility: Visibility | None = None
    rank_style: RankStyle | None = Field(
        None, description="A new rank style (`unique`, `standard`, `dense`); not null."
    )
    join_required: bool | None = Field(None, description=_JOIN_REQUIRED + " Not null.")
    max_entrants: int | None = Field(None, ge=1, le=MAX_LIMIT, description=_MAX_ENTRANTS)
    max_attempts: int | None = Field(None, ge=1, le=MAX_LIMIT, description=_MAX_ATTEMPTS)


class Competition(BaseModel):
    """A stored competition."""

    model_config = ConfigDict(frozen=True)

    id: Identifier
    name: str
    sort_order: SortOrder
    operator: Operator
    reset: ResetSchedule
    timezone: str
    starts_at: datetime | None
    ends_at: datetime | None
    max_value: float | None
    visibility: Visibility
    rank_style: RankStyle = Field(
        RankStyle.UNIQUE,
        description="How equal scores are ranked: `unique` (1234, first to reach the score"
        " first), `standard` (1224) or `dense` (1223); applies to every read and push.",
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    join_required: bool = Field(False, description=_JOIN_REQUIRED)
    max_entrants: int | None = Field(None, description=_MAX_ENTRANTS)
    max_attempts: int | None = Field(None, description=_MAX_ATTEMPTS)
    teams: TeamsSetting | None = Field(None, description=_TEAMS)
    created_at: datetime
    updated_at: datetime

    def is_open_at(self, moment: datetime) -> bool:
        """Whether events at ``moment`` fall inside the competition's start/end."""
        if self.starts_at is not None and moment < self.starts_at:
            return False
        return self.ends_at is None or moment < self.ends_at
