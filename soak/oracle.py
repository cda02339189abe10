"""The replay oracle: standings computed from accepted events by the rules, independently.

It restates the domain rules (DESIGN.md, the ranker issue) without using the ranker's code:
``best`` keeps the better value and, on an equal value, the earliest time it was reached;
``latest`` keeps the value of the latest event time (a later arrival wins on equal times);
``sum`` adds and counts as reached at the latest contributing event time. Every event counts
toward ``alltime`` and, for competitions with a reset schedule, its period (in the
competition's time zone). Ranks: better score first, then earlier reached, then user id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.schemas.competition import ResetSchedule
from shared.windows import ALLTIME, period_label


@dataclass(frozen=True, slots=True)
class OracleCompetition:
    """What the oracle needs to know about a competition."""

    id: str
    sort_order: str  # "desc" | "asc"
    operator: str  # "best" | "latest" | "sum"
    reset: str = "none"
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class OracleEvent:
    """An accepted score, in the order the ranker would see it within its competition."""

    event_id: str
    competition_id: str
    user_id: str
    value: float
    ts: datetime


@dataclass(slots=True)
class _State:
    score: float
    reached_at: datetime
    newest_ts: datetime


@dataclass(frozen=True, slots=True)
class OracleStanding:
    """One expected row: rank (1-based), user, score, when reached."""

    rank: int
    user_id: str
    score: float
    reached_at: datetime


def _better(value: float, than: float, sort_order: str) -> bool:
    return value > than if sort_order == "desc" else value < than


def _apply(
    state: _State | None, operator: str, sort_order: str, value: float, ts: datetime
) -> _State:
    if state is None:
        return _State(value, ts, ts)
    newest = max(state.newest_ts, ts)
    if operator == "sum":
        return _State(state.score + value, max(state.reached_at, ts), newest)
    if operator == "latest":
        return _State(value, ts, ts) if ts >= state.newest_ts else state
    if _better(value, state.score, sort_order):
        return _State(value, ts, newest)
    if value == state.score:
        return _State(state.score, min(state.reached_at, ts), newest)
    return _State(state.score, state.reached_at, newest)


def expected_standings(
    competitions: Iterable[OracleCompetition], events: Iterable[OracleEvent]
) -> dict[tuple[str, str], list[OracleStanding]]:
    """Ranked standings per (competition id, window); duplicate event ids count once."""
    by_id = {competition.id: competition for competition in competitions}
    states: dict[tuple[str, str], dict[str, _State]] = {}
    seen: set[str] = set()
    for event in events:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        competition = by_id[event.competition_id]
        windows = [ALLTIME]
        label = period_label(ResetSchedule(competition.reset), event.ts, competition.timezone)
        if label is not None:
            windows.append(label)
        for window in windows:
            table = states.setdefault((competition.id, window), {})
            table[event.user_id] = _apply(
                table.get(event.user_id),
                competition.operator,
                competition.sort_order,
                event.value,
                event.ts,
            )
    ranked: dict[tuple[str, str], list[OracleStanding]] = {}
    for (competition_id, window), table in states.items():
        sign = -1.0 if by_id[competition_id].sort_order == "desc" else 1.0
        order = sorted(
            table.items(), key=lambda item: (sign * item[1].score, item[1].reached_at, item[0])
        )
        ranked[(competition_id, window)] = [
            OracleStanding(rank, user_id, state.score, state.reached_at)
            for rank, (user_id, state) in enumerate(order, start=1)
        ]
    return ranked
