"""The notifier's HTTP response bodies (the socket's frames are in :mod:`protocol`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class WindowTab(BaseModel):
    """A window the live page offers as a tab."""

    window: str = Field(description="What to subscribe with: `alltime`, `current` or a label.")
    kind: Literal["alltime", "current", "past"]
    period: str | None = Field(None, description="The period label (`current` and `past`).")


class TeamRow(BaseModel):
    """A team on the page's team board."""

    rank: int = Field(description="In the competition's rank style.")
    team_id: str
    score: float


class ViewerAttempts(BaseModel):
    """The viewer's attempts in a ``max_attempts`` competition (``?user=``)."""

    window: str = Field(
        description="The attempt window (the current period when reading all-time)."
    )
    used: int
    max: int


class ViewerStanding(BaseModel):
    """The viewer's standing in the page's window (``?user=``)."""

    user_id: str
    rank: int = Field(description="In the competition's rank style.")
    score: float
    total: int = Field(description="Ranked users in the window.")
    percentile: float = Field(
        description="100 * (total - users with a strictly better score) / total (best: 100)."
    )


class PageAbout(BaseModel):
    """What the live page shows besides the socket's frames."""

    competition_id: str
    name: str
    sort_order: str
    rank_style: str
    reset: str
    timezone: str
    ends_at: datetime | None = Field(description="When the competition ends (UTC), if it does.")
    server_time: datetime = Field(description="The notifier's clock (the countdown's base).")
    window: str = Field(description="The window asked for, `current` resolved to its label.")
    current_window: str = Field(description="The current period's label (`alltime`: no reset).")
    period_ends_at: datetime | None = Field(description="When the current period ends (UTC).")
    windows: list[WindowTab] = Field(
        description="All-time, the current period and the three periods before it."
    )
    me: ViewerStanding | None = Field(
        None, description="Only with `?user=`: null while the user is not ranked in the window."
    )
    attempts: ViewerAttempts | None = Field(
        None, description="Only with `?user=` in a competition with `max_attempts`."
    )
    teams: list[TeamRow] | None = Field(
        None,
        description="Only for a competition with a team board: its top teams in the window"
        " (the page keeps them live over a `?board=teams` socket).",
    )
