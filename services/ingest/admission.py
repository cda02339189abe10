"""Whether a well-formed score event may enter the topic: caller's rights and competition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.auth import Principal, Scope
from shared.schemas.competition import Competition
from shared.schemas.score_event import ScoreEventIn


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an event is refused: a reason word (metrics, clients), the field and a message."""

    reason: str
    field: str
    message: str


FORBIDDEN = Rejection(
    "forbidden",
    "user_id",
    "the 'scores:write' scope allows posting only for the token's own subject",
)


class Admission:
    """The admission rules for the events of one request (one caller, one receive time).

    The competition must exist and be running when the event is received; the event's own
    time must fall inside the competition too and be no older than the dedup horizon
    (``PODIUM_DEDUP_HORIZON_DAYS`` before the receive time: older event rows may already be
    pruned, so a duplicate could no longer be recognised), and its value must not exceed
    ``max_value``.
    What depends only on the caller or the competition is decided once per request and
    competition, not once per event (a 500-event batch names a few hundred competitions).
    """

    __slots__ = (
        "_horizon_days",
        "_oldest_ts",
        "_principal",
        "_received_at",
        "_running",
        "_writes_any",
    )

    def __init__(self, principal: Principal, received_at: datetime, horizon_days: int) -> None:
        self._principal = principal
        self._received_at = received_at
        self._horizon_days = horizon_days
        self._oldest_ts = received_at - timedelta(days=horizon_days)
        self._writes_any = principal.has(Scope.SCORES_WRITE_ANY)
        self._running: dict[str, Rejection | None] = {}

    def check(self, event: ScoreEventIn, competition: Competition | None) -> Rejection | None:
        """The first rule ``event`` breaks, or None when it may be published."""
        if not self._writes_any and not self._principal.may_write_for(event.user_id):
            return FORBIDDEN
        if competition is None:
            return Rejection(
                "unknown_competition",
                "competition_id",
                f"competition {event.competition_id!r} does not exist",
            )
        try:
            refused = self._running[competition.id]
        except KeyError:
            refused = self._running[competition.id] = self._not_running(competition)
        if refused is not None:
            return refused
        if event.ts is not None and event.ts < self._oldest_ts:
            return Rejection(
                "beyond_dedup_horizon",
                "ts",
                f"the event time is more than {self._horizon_days} day(s) before the receive"
                " time (PODIUM_DEDUP_HORIZON_DAYS): events that old are no longer deduplicated",
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
                f"value {event.value:g} exceeds the competition's max_value "
                f"{competition.max_value:g}",
            )
        return None

    def _not_running(self, competition: Competition) -> Rejection | None:
        """Why ``competition`` takes no events at the receive time (None: it does)."""
        if competition.starts_at is not None and self._received_at < competition.starts_at:
            return Rejection(
                "not_started",
                "competition_id",
                f"competition {competition.id!r} starts at {competition.starts_at.isoformat()}",
            )
        if competition.ends_at is not None and self._received_at >= competition.ends_at:
            return Rejection(
                "ended",
                "competition_id",
                f"competition {competition.id!r} ended at {competition.ends_at.isoformat()}",
            )
        return None
