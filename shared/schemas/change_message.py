"""Messages on the ``leaderboard-changes`` topic: what one ranker batch changed.

The ranker publishes one message per touched competition per batch; the notifier fans it out
and the query service drops its cached pages of that competition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.identifiers import BoardId, Identifier


class LeaderboardEntry(BaseModel):
    """One row of a leaderboard: 1-based unique rank, user and score."""

    model_config = ConfigDict(frozen=True)

    rank: int = Field(ge=1)
    user_id: Identifier
    score: float


class UserChange(BaseModel):
    """A user whose standing changed; ``score``/``rank`` are None when the user was removed."""

    model_config = ConfigDict(frozen=True)

    user_id: Identifier
    score: float | None
    rank: int | None


class WindowChange(BaseModel):
    """The changes in one window (``alltime`` or a period label such as ``2026-W48``)."""

    model_config = ConfigDict(frozen=True)

    window: str
    changed: list[UserChange]
    top_changed: bool
    top: list[LeaderboardEntry]
    total: int = Field(ge=0, description="Entrants in the window after the change.")


class ChangeMessage(BaseModel):
    """Schema v1 of a change message. ``version`` increases per competition.

    ``rebuilt`` (added for issue #17; absent means false, and readers that do not know it
    ignore it) says the competition was rebuilt from PostgreSQL because Redis had lost some
    of it: any user's rank may have changed without being listed in ``changed``, so clients
    need a fresh snapshot and caches must drop everything of the competition.
    ``deleted``: see the field.
    """

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    competition_id: BoardId = Field(
        description="The board: a competition, or its team board (`<competition id>~teams`)."
    )
    version: int = Field(ge=1)
    emitted_at: datetime
    windows: list[WindowChange]
    rebuilt: bool = False
    deleted: bool = False
    """The competition was deleted (issue #15; absent means false): ``windows`` is empty,
    the notifier closes the competition's sockets (4404) and caches drop it. Published by
    ingest's ``DELETE /api/v1/competitions/{cid}``, whose ``version`` is the deletion time
    in ms (no counter is left to increase)."""
