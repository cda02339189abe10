"""A user's standing in one window of one competition."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from shared.schemas.identifiers import Identifier


class Standing(BaseModel):
    """The score a user holds in a window and when that score was reached (the tie-break)."""

    model_config = ConfigDict(frozen=True)

    competition_id: Identifier
    window: str
    user_id: Identifier
    score: float
    reached_at: datetime
