"""Whether a well-formed score event may enter the topic: caller's rights and competition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shared.auth import Principal
from shared.schemas.competition import Competition
from shared.schemas.score_event import ScoreEventIn


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event is refused: a reason word (metrics, clients), the field and a message."""

    reason: str
    field: str
    message: str


def check_event(
    event: ScoreEventIn,
    principal: Principal,
    competition: Competition | None,
    received_at: datetime,
) -> Rejection | None:
    """The first rule ``event`` breaks, or None when it may be published.

    The competition must exist and be running when the event is received; the event's own
    time must fall inside the competition too, and its value must not exceed ``max_value``.
    """
    if not principal.may_write_for(event.user_id):
        return Rejection(
            "forbidden",
            "user_id",
            "the 'scores:write' scope allows posting only for the token's own subject",
        )
    if competition is None:
        return Rejection(
            "unknown_competition",
            "competition_id",
            f"competition {event.competition_id!r} does not exist",
        )
    if competition.starts_at is not None and received_at < competition.starts_at:
        return Rejection(
            "not_started",
            "competition_id",
            f"competition {competition.id!r} starts at {competition.starts_at.isoformat()}",
        )
    if competition.ends_at is not None and received_at >= competition.ends_at:
        return Rejection(
            "ended",
            "competition_id",
            f"competition {competition.id!r} ended at {competition.ends_at.isoformat()}",
        )
    if event.ts is not None and not competition.is_open_at(event.ts):
        return Rejection(
            "ts_outside_competition",
            "ts",
            "the event time is outside the competition's start and end",
        )
    if competition.max_value is not None and event.value > competition.max_value:
        return Rejection(
            "above_max_value",
            "value",
            f"value {event.value:g} exceeds the competition's max_value {competition.max_value:g}",
        )
    return None
