"""The ranking rules, free of I/O: which events can never apply, and how operators combine.

Everything here is a pure function of the event, the competition and the stored standing, so a
replayed batch decides exactly as the first attempt did (that is what makes replays
idempotent). Lateness is judged by the event's ``received_at`` (stamped by ingest), not by the
ranker's clock, for the same reason.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple, cast

from services.ranker.records import ControlMessage, ScoreMessage
from shared.leaderboard import MAX_REACHED_US
from shared.schemas.competition import Competition, Operator, ResetSchedule, SortOrder
from shared.windows import ALLTIME, period_end, period_label

_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = _EARLIEST + timedelta(microseconds=MAX_REACHED_US)
"""The reached times the member encoding holds (``shared.leaderboard.reached_us``)."""
PERIOD_CACHE_ENTRIES = 65_536
NO_HORIZON = timedelta.max
"""A horizon no event is beyond (callers that judge without one, e.g. unit tests)."""
NOTHING_PRUNED = datetime.min.replace(tzinfo=UTC)
"""``pruned_before`` while no event row was ever pruned."""


class DeadLetterReason(StrEnum):
    """Why an event went to the dead-letter topic (the ``reason`` header and metric label)."""

    UNDECODABLE = "undecodable"
    UNKNOWN_COMPETITION = "unknown_competition"
    BAD_VALUE = "bad_value"
    BAD_TIME = "bad_time"
    OUTSIDE_COMPETITION = "outside_competition"
    LATE = "late"
    BANNED = "banned"
    BEYOND_DEDUP_HORIZON = "beyond_dedup_horizon"
    NOT_JOINED = "not_joined"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"


class Standing(NamedTuple):
    """A user's standing in one window: score, when it was reached, newest event time seen.

    A tuple, not a dataclass: a batch creates one per applied event and window.
    """

    score: float
    reached_at: datetime
    last_event_ts: datetime


_periods: dict[tuple[ResetSchedule, str, int], tuple[list[str], datetime]] = {}


def period_of(reset: ResetSchedule, moment: datetime, timezone: str) -> tuple[list[str], datetime]:
    """The windows of ``moment`` (``alltime`` and its period) and when the period ends
    (``reset`` is not ``none``). The list is shared: callers must not change it.

    Memoized per UTC second: both are functions of the instant that change only at local
    period boundaries, which fall on whole seconds (time-zone offsets are whole seconds), so
    every moment of one second shares them. Most events of a batch share a few seconds.
    """
    since = moment - _EARLIEST  # exact integer seconds (a float timestamp rounds near 2286)
    key = (reset, timezone, since.days * 86_400 + since.seconds)
    found = _periods.get(key)
    if found is None:
        label, ends = period_label(reset, moment, timezone), period_end(reset, moment, timezone)
        assert label is not None
        assert ends is not None
        if len(_periods) >= PERIOD_CACHE_ENTRIES:
            _periods.clear()
        found = _periods[key] = ([ALLTIME, label], ends)
    return found


Combiner = Callable[[Standing, float, datetime], Standing]
"""How a score of ``value`` at ``ts`` changes an existing standing (see :func:`combine`)."""
_new = tuple.__new__  # a Standing without the NamedTuple's Python-level __new__


def _best(better: Callable[[float, float], bool]) -> Combiner:
    def best(current: Standing, value: float, ts: datetime) -> Standing:
        last = current.last_event_ts
        newest = last if last >= ts else ts  # max(), keeping the first of equal times
        score = current.score
        if better(value, score):
            return _new(Standing, (value, ts, newest))
        if value == score:
            reached = current.reached_at
            return _new(Standing, (score, reached if reached <= ts else ts, newest))  # min()
        return _new(Standing, (score, current.reached_at, newest))

    return best


def _latest(current: Standing, value: float, ts: datetime) -> Standing:
    if ts >= current.last_event_ts:
        return _new(Standing, (value, ts, ts))
    return current


def _sum(current: Standing, value: float, ts: datetime) -> Standing:
    last, reached = current.last_event_ts, current.reached_at
    return _new(
        Standing,
        (current.score + value, reached if reached >= ts else ts, last if last >= ts else ts),
    )


_COMBINERS: dict[tuple[Operator, SortOrder], Combiner] = {
    (Operator.BEST, SortOrder.DESC): _best(operator.gt),
    (Operator.BEST, SortOrder.ASC): _best(operator.lt),
    (Operator.LATEST, SortOrder.DESC): _latest,
    (Operator.LATEST, SortOrder.ASC): _latest,
    (Operator.SUM, SortOrder.DESC): _sum,
    (Operator.SUM, SortOrder.ASC): _sum,
}
_ALLTIME_ONLY = [ALLTIME]


class CompetitionRules:
    """One competition's rules, read once per batch: which scores apply, to which windows,
    and how they combine.

    :meth:`judge` and :attr:`combine` are the hot path of planning (once per score); they
    decide exactly as :func:`rejection_reason`, :func:`event_windows` and :func:`combine`
    document.
    """

    __slots__ = (
        "_ends",
        "_grace",
        "_horizon",
        "_max_value",
        "_pruned_before",
        "_reset",
        "_starts",
        "_timezone",
        "combine",
        "join_required",
        "max_attempts",
    )

    def __init__(
        self,
        competition: Competition,
        grace_s: int,
        horizon: timedelta = NO_HORIZON,
        pruned_before: datetime = NOTHING_PRUNED,
    ) -> None:
        self.combine: Combiner = _COMBINERS[(competition.operator, competition.sort_order)]
        self._grace = timedelta(seconds=grace_s)
        self._horizon = horizon
        self._pruned_before = pruned_before
        self._max_value = competition.max_value
        self._reset = competition.reset
        self._timezone = competition.timezone
        self._starts = competition.starts_at
        self._ends = competition.ends_at
        self.join_required = competition.join_required
        """Only entrants' scores apply (the planner checks, after the duplicate check)."""
        self.max_attempts = competition.max_attempts
        """Applied scores per user and attempt window (the last of :meth:`judge`'s windows)."""

    def judge(self, message: ScoreMessage) -> list[str] | DeadLetterReason:
        """The windows ``message`` counts toward (a shared list: do not change it), or why
        it can never apply.

        Checked in order: the value bound, the encodable reached time, the dedup horizon,
        the competition's start and end, then lateness (``received_at`` after the period's end
        plus grace).

        The dedup horizon is the rule ingest applies (``ts`` no older than ``received_at``
        minus the horizon: the same verdict on every replay), plus ``pruned_before``, how far
        ``podium prune`` has dropped event rows (read in the batch's transaction): an event
        older than that can no longer be told from a duplicate, so it never applies.
        """
        if self._max_value is not None and message.value > self._max_value:
            return DeadLetterReason.BAD_VALUE
        ts = message.ts
        if not _EARLIEST <= ts <= _LATEST:
            return DeadLetterReason.BAD_TIME
        if ts < self._pruned_before or message.received_at - ts > self._horizon:
            return DeadLetterReason.BEYOND_DEDUP_HORIZON
        if (self._starts is not None and ts < self._starts) or (
            self._ends is not None and ts >= self._ends
        ):  # Competition.is_open_at
            return DeadLetterReason.OUTSIDE_COMPETITION
        if self._reset is ResetSchedule.NONE:
            return _ALLTIME_ONLY
        windows, ends = period_of(self._reset, ts, self._timezone)
        if message.received_at > ends + self._grace:
            return DeadLetterReason.LATE
        return windows


def rejection_reason(
    message: ScoreMessage | ControlMessage, competition: Competition | None, grace_s: int
) -> DeadLetterReason | None:
    """Why ``message`` can never apply regardless of stored state, or None if it may apply."""
    if competition is None:
        return DeadLetterReason.UNKNOWN_COMPETITION
    if message.kind == "control":
        return None
    verdict = CompetitionRules(competition, grace_s).judge(message)
    return None if type(verdict) is list else cast(DeadLetterReason, verdict)


def event_windows(message: ScoreMessage, competition: Competition) -> list[str]:
    """The windows a score counts toward: ``alltime`` and its period, if any."""
    if competition.reset is ResetSchedule.NONE:
        return [ALLTIME]
    return list(period_of(competition.reset, message.ts, competition.timezone)[0])


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
    return _COMBINERS[(operator, sort_order)](current, value, ts)
