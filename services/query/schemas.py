"""Response bodies of the read API (documentation models for OpenAPI and tests).

Handlers build plain dicts for speed; these models describe exactly those shapes, and the
tests validate real responses against them so the document stays true.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition

_PERCENTILE = (
    "100 * (total - users with a strictly better score) / total: the share of the window's"
    " ranked users this user beats or ties, itself included (the best score is 100)."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RankedUser(LeaderboardEntry):
    """A leaderboard entry of a requested user, with the user's percentile."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    percentile: float = Field(gt=0, le=100, description=_PERCENTILE)


class TopPage(_Strict):
    """One page of a leaderboard, best first."""

    competition_id: str
    window: str = Field(description="The window read (``current`` resolved to its label).")
    total: int = Field(ge=0, description="Users the window ranks.")
    entries: list[LeaderboardEntry]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null at the end."
    )
    prev_cursor: str | None = Field(
        description="Pass as ``cursor`` for the page before this one (it ends right before"
        " this page's first entry); null on the first page."
    )


class Attempts(_Strict):
    """A user's applied attempts in one attempt window of a ``max_attempts`` competition."""

    window: str = Field(
        description="The attempt window: the read window's period (the current period when"
        " reading `alltime` of a competition with a reset), or `alltime` without a reset."
    )
    used: int = Field(ge=0)
    max: int = Field(ge=1)


class UserStanding(_Strict):
    """A user's rank and score in a window, and how many users it ranks."""

    competition_id: str
    window: str
    user_id: str
    rank: int = Field(ge=1, description="In the competition's rank style.")
    score: float
    total: int = Field(ge=0, description="Users the window ranks.")
    percentile: float = Field(gt=0, le=100, description=_PERCENTILE)
    attempts: Attempts | None = Field(
        None, description="Attempts used, in a competition with `max_attempts` (else absent)."
    )


class Neighbourhood(_Strict):
    """A user and their neighbours above and below, clipped at the edges."""

    competition_id: str
    window: str
    user_id: str
    rank: int = Field(ge=1, description="In the competition's rank style.")
    total: int = Field(ge=0, description="Users the window ranks.")
    percentile: float = Field(gt=0, le=100, description=_PERCENTILE)
    entries: list[LeaderboardEntry]


class UsersRanks(_Strict):
    """Ranks of a set of users (a friends leaderboard), best first; unranked users listed apart."""

    competition_id: str
    window: str
    total: int = Field(ge=0, description="Users the window ranks.")
    entries: list[RankedUser]
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


class TeamEntry(_Strict):
    """A team on the team board."""

    rank: int = Field(ge=1, description="In the competition's rank style.")
    team_id: str
    score: float = Field(description="The aggregate of its members' scores in the window.")


class TeamTopPage(_Strict):
    """One page of a team board, best first (paged like the individual board)."""

    competition_id: str
    window: str = Field(description="The window read (``current`` resolved to its label).")
    total: int = Field(ge=0, description="Teams the window ranks.")
    entries: list[TeamEntry]
    next_cursor: str | None = Field(None, description="The page after this one (null: last).")
    prev_cursor: str | None = Field(None, description="The page before this one (null: first).")


class TeamStanding(_Strict):
    """A team's rank and score in a window, and its members."""

    competition_id: str
    window: str
    team_id: str
    rank: int = Field(ge=1, description="In the competition's rank style.")
    score: float
    total: int = Field(ge=0, description="Teams the window ranks.")
    percentile: float = Field(gt=0, le=100, description=_PERCENTILE)
    members: int = Field(ge=1, description="Users in the team (with or without a standing).")


class TeamMember(_Strict):
    """A member's standing, ranked inside the team."""

    rank: int = Field(ge=1, description="Inside the team, in the competition's rank style.")
    user_id: str
    score: float
    board_rank: int = Field(ge=1, description="On the competition's individual board.")


class TeamMembers(_Strict):
    """A team's members ranked inside it; members without a standing listed apart."""

    competition_id: str
    window: str
    team_id: str
    entries: list[TeamMember]
    absent: list[str] = Field(description="Members without a standing in the window.")
