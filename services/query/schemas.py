"""Response bodies of the read API (documentation models for OpenAPI and tests).

Handlers build plain dicts for speed; these models describe exactly those shapes, and the
tests validate real responses against them so the document stays true.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TopPage(_Strict):
    """One page of a leaderboard, best first."""

    competition_id: str
    window: str = Field(description="The window read (``current`` resolved to its label).")
    entries: list[LeaderboardEntry]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null at the end."
    )


class UserStanding(_Strict):
    """A user's rank and score in a window, and how many users it ranks."""

    competition_id: str
    window: str
    user_id: str
    rank: int = Field(ge=1)
    score: float
    total: int = Field(ge=0)


class Neighbourhood(_Strict):
    """A user and their neighbours above and below, clipped at the edges."""

    competition_id: str
    window: str
    user_id: str
    rank: int = Field(ge=1)
    total: int = Field(ge=0)
    entries: list[LeaderboardEntry]


class UsersRanks(_Strict):
    """Ranks of a set of users (a friends leaderboard), best first; unranked users listed apart."""

    competition_id: str
    window: str
    total: int = Field(ge=0)
    entries: list[LeaderboardEntry]
    absent: list[str] = Field(description="Requested users without a standing in the window.")


class CompetitionList(_Strict):
    """A page of competitions ordered by id."""

    competitions: list[Competition]
    next_cursor: str | None


class WindowSummary(_Strict):
    """A window holding standings and how many users it ranks."""

    window: str
    entrants: int = Field(ge=0)


class CompetitionDetail(Competition):
    """A competition with its entrant count (all-time) and the windows that hold standings."""

    entrants: int = Field(ge=0)
    current_window: str = Field(description="What ``window=current`` means right now.")
    windows: list[WindowSummary]
