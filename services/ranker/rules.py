"""The ranking rules, free of I/O: which events can never apply, and how operators combine.

Everything here is a pure function of the event, the competition and the stored standing, so a
replayed batch decides exactly as the first attempt did (that is what makes replays
idempotent). Lateness is judged by the event's ``received_at`` (stamped by ingest), not by the
ranker's clock, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.leaderboard import reached_us
from shared.schemas.competition import Competition, Operator, SortOrder
from shared.schemas.score_event import ControlEvent, ScoreEvent
from shared.windows import period_end, windows_for


class DeadLetterReason(StrEnum):
    """Why an event went to the dead-letter topic (the ``reason`` header and metric label)."""

    UNDECODABLE = "undecodable"
    UNKNOWN_COMPETITION = "unknown_competition"
    BAD_VALUE = "bad_value"
    BAD_TIME = "bad_time"
    OUTSIDE_COMPETITION = "outside_competition"
    LATE = "late"
    BANNED = "banned"


@dataclass(frozen=True, slots=True)
class Standing:
    """A user's standing in one window: score, when it was reached, newest event time seen."""

    score: float
    reached_at: datetime
    last_event_ts: datetime


def rejection_reason(
    message: ScoreEvent | ControlEvent, competition: Competition | None, grace_s: int
) -> DeadLetterReason | None:
    """Why ``message`` can never apply regardless of stored state, or None if it may apply."""
    if competition is None:
        return DeadLetterReason.UNKNOWN_COMPETITION
    if isinstance(message, ControlEvent):
        return None
    if competition.max_value is not None and message.value > competition.max_value:
        return DeadLetterReason.BAD_VALUE
    try:
        reached_us(message.ts)
    except ValueError:
        return DeadLetterReason.BAD_TIME
    if not competition.is_open_at(message.ts):
        return DeadLetterReason.OUTSIDE_COMPETITION
    ends = period_end(competition.reset, message.ts, competition.timezone)
    if ends is not None and message.received_at > ends + timedelta(seconds=grace_s):
        return DeadLetterReason.LATE
    return None


def event_windows(message: ScoreEvent, competition: Competition) -> list[str]:
    """The windows a score counts toward: ``alltime`` and its period, if any."""
    return windows_for(competition.reset, message.ts, competition.timezone)


def is_better(value: float, than: float, sort_order: SortOrder) -> bool:
    """Whether ``value`` beats ``than`` under ``sort_order``."""
    return value > than if sort_order is SortOrder.DESC else value < than


def combine(
    operator: Operator,
    sort_order: SortOrder,
    current: Standing | None,
    value: float,
    ts: datetime,
) -> Standing:
    """The standing after a score of ``value`` at event time ``ts``.

    ``best`` keeps the better value, and for an equal value the earliest time it was reached
    (so arrival order does not matter); ``latest`` takes the value of the latest event time,
    a later arrival winning on equal times; ``sum`` adds and counts as reached at the latest
    contributing event time.
    """
    if current is None:
        return Standing(value, ts, ts)
    newest = max(current.last_event_ts, ts)
    if operator is Operator.BEST:
        if is_better(value, current.score, sort_order):
            return Standing(value, ts, newest)
        if value == current.score:
            return Standing(current.score, min(current.reached_at, ts), newest)
        return Standing(current.score, current.reached_at, newest)
    if operator is Operator.LATEST:
        if ts >= current.last_event_ts:
            return Standing(value, ts, ts)
        return current
    return Standing(current.score + value, max(current.reached_at, ts), newest)
