"""Tournament entrants: who joined a competition, and when."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.schemas.identifiers import Identifier


class EntrantIn(BaseModel):
    """Body of ``POST /api/v1/competitions/{id}/entrants``."""

    model_config = ConfigDict(extra="forbid")

    user_id: Identifier


class Entrant(BaseModel):
    """A user who joined a competition."""

    competition_id: str
    user_id: str
    joined_at: datetime


class EntrantPage(BaseModel):
    """A page of entrants ordered by user id; ``next_after`` continues it (null: the end)."""

    entrants: list[Entrant]
    total: int
    next_after: str | None = None
