"""An independent replay oracle: the leaderboards a stream of events must produce.

Written from the rules in issue #4 and DESIGN.md, not from the ranker's code, and in a
different shape: it keeps each user's applied events per window (since their last removal) and
derives the standing from that history at the end, where the ranker folds incrementally.

Input messages are what ingest puts on ``score-events``, as plain dicts (or raw bytes for an
undecodable record), in topic order per competition. Rules:

- dead letters, in this order: undecodable; unknown competition; value above the
  competition's ``max_value`` (``bad_value``); event time more than the dedup horizon
  (``horizon``, ``PODIUM_DEDUP_HORIZON_DAYS``) before its receive time
  (``beyond_dedup_horizon``, issue #18); event time outside [starts_at, ends_at)
  (``outside_competition``); for a reset schedule, received more than ``grace_s`` after its
  period ended (``late``); a score of a banned user (``banned``);
- an ``event_id`` applies once (score and control ids are separate name spaces); a duplicate
  of an applied event is dropped, even after a ban;
- windows: ``alltime`` plus the period of the event time in the competition's time zone
  (daily ``YYYY-MM-DD``, weekly ISO ``YYYY-Www``, monthly ``YYYY-MM``);
- ``best``: the best value (max for desc, min for asc), reached at the earliest event time that
  scored it; ``latest``: the value of the event with the latest event time, the later arrival
  on equal times, reached at that time; ``sum``: the sum (added in arrival order), reached at
  the latest event time;
- tournaments (issue #14), after the ban check: in a ``join_required`` competition a score
  of a user who is not among ``entrants`` is ``not_joined``; with ``max_attempts``, a score
  whose attempt window (its period, or ``alltime`` without a reset) already holds that many
  applied events of the user since their last removal is ``attempts_exhausted``; both verdicts
  are final for the event id (checked right after the duplicate check: a later record with
  the same id gets the same reason, whatever has changed since);
- ``remove_user`` erases the user's standings in every window (later events start afresh,
  attempts too); ``ban_user`` does that and dead-letters the user's later scores; both take
  the user out of their team;
- team boards (issue #14, ``teams`` = ``sum``, ``best`` or ``mean``): a user's team is the
  ``team_id`` of their latest applied score carrying one; per window, a team's score is the sum
  (exactly rounded), best (by the sort order) or mean of its members' final scores there, over
  the members who have one, reached at the earliest time a member reached the best score
  (``best``) or the latest member's reached time (``sum``, ``mean``); the board is kept under
  ``<competition id>~teams`` and ranked like the competition;
- rank order: better score first, then earlier reached time, then user id.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

Message = dict[str, Any] | bytes
Key = tuple[str, str]  # (competition_id, window)


@dataclass(frozen=True)
class OracleCompetition:
    """The competition fields that decide ranking."""

    id: str
    sort_order: str = "desc"
    operator: str = "best"
    reset: str = "none"
    timezone: str = "UTC"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    max_value: float | None = None
    join_required: bool = False
    max_attempts: int | None = None
    teams: str | None = None
    """The team aggregate (``sum``, ``best``, ``mean``), or None: no team board."""


@dataclass
class OracleResult:
    """Expected standings per (competition, window) and each message's fate."""

    standings: dict[Key, dict[str, tuple[float, datetime]]]
    fates: list[str]  # "applied", "duplicate" or a dead-letter reason, per message
    sort_orders: dict[str, str] = field(default_factory=dict)
    attempts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """Applied attempts per (competition, attempt window, user) of ``max_attempts`` ones."""

    def ranking(self, competition_id: str, window: str) -> list[tuple[str, float]]:
        """(user, score) in rank order."""
        rows = self.standings.get((competition_id, window), {})
        descending = self.sort_orders[competition_id] == "desc"
        ordered = sorted(
            rows.items(),
            key=lambda item: (-item[1][0] if descending else item[1][0], item[1][1], item[0]),
        )
        return [(user, score) for user, (score, _) in ordered]

    def dead_letters(self) -> Counter[str]:
        """How many messages went to the dead-letter topic, by reason."""
        return Counter(fate for fate in self.fates if fate not in ("applied", "duplicate"))


def _parse_time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def period_of(competition: OracleCompetition, moment: datetime) -> tuple[str, datetime] | None:
    """The period label of ``moment`` and when that period ends, or None without a reset."""
    if competition.reset == "none":
        return None
    zone = ZoneInfo(competition.timezone)
    day = moment.astimezone(zone).date()
    if competition.reset == "daily":
        label, next_start = day.isoformat(), day + timedelta(days=1)
    elif competition.reset == "weekly":
        year, week, weekday = day.isocalendar()
        label, next_start = f"{year}-W{week:02d}", day + timedelta(days=8 - weekday)
    else:
        label = f"{day.year:04d}-{day.month:02d}"
        next_start = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return label, datetime.combine(next_start, time(0), tzinfo=zone)


DEFAULT_HORIZON = timedelta(days=30)
"""``PODIUM_DEDUP_HORIZON_DAYS``'s default."""


def replay(
    competitions: dict[str, OracleCompetition],
    messages: list[Message],
    grace_s: float,
    horizon: timedelta = DEFAULT_HORIZON,
    entrants: set[tuple[str, str]] | frozenset[tuple[str, str]] = frozenset(),
) -> OracleResult:
    """Compute the expected leaderboards for ``messages``; ``entrants`` are the (competition,
    user) pairs that joined before the stream."""
    histories: dict[tuple[str, str, str], list[tuple[float, datetime, int]]] = defaultdict(list)
    applied_scores: set[str] = set()
    applied_controls: set[str] = set()
    banned: set[tuple[str, str]] = set()
    teams: dict[tuple[str, str], str] = {}  # (competition, user) -> team
    refused: dict[str, str] = {}  # event id -> not_joined / attempts_exhausted
    fates: list[str] = []
    for arrival, message in enumerate(messages):
        fates.append(_apply(competitions, message, arrival, grace_s, horizon, histories,
                            applied_scores, applied_controls, banned, entrants,
                            teams, refused))  # fmt: skip
    standings: dict[Key, dict[str, tuple[float, datetime]]] = defaultdict(dict)
    for (cid, window, user), events in histories.items():
        if events:
            standings[(cid, window)][user] = _standing(competitions[cid], events)
    for (cid, window), rows in list(standings.items()):
        if competitions[cid].teams is not None:
            standings[(cid + "~teams", window)] = _team_board(competitions[cid], rows, teams)
    # attempts: how many events the attempt window's history holds (it restarts at removal)
    attempts = {
        (cid, window, user): len(events)
        for (cid, window, user), events in histories.items()
        if events
        and competitions[cid].max_attempts is not None
        and (window == "alltime") == (competitions[cid].reset == "none")
    }
    sort_orders = {cid: comp.sort_order for cid, comp in competitions.items()}
    sort_orders.update({cid + "~teams": order for cid, order in list(sort_orders.items())})
    return OracleResult(dict(standings), fates, sort_orders, attempts)


def _team_board(
    competition: OracleCompetition,
    rows: dict[str, tuple[float, datetime]],
    teams: dict[tuple[str, str], str],
) -> dict[str, tuple[float, datetime]]:
    """One window's team standings from its users' final standings."""
    by_team: dict[str, list[tuple[float, datetime]]] = defaultdict(list)
    for user, standing in rows.items():
        team = teams.get((competition.id, user))
        if team is not None:
            by_team[team].append(standing)
    board = {}
    for team, members in by_team.items():
        scores = [score for score, _ in members]
        if competition.teams == "best":
            best = max(scores) if competition.sort_order == "desc" else min(scores)
            board[team] = (best, min(moment for score, moment in members if score == best))
            continue
        total = math.fsum(scores)
        value = total if competition.teams == "sum" else total / len(members)
        board[team] = (value, max(moment for _, moment in members))
    return board


def _apply(
    competitions: dict[str, OracleCompetition],
    message: Message,
    arrival: int,
    grace_s: float,
    horizon: timedelta,
    histories: dict[tuple[str, str, str], list[tuple[float, datetime, int]]],
    applied_scores: set[str],
    applied_controls: set[str],
    banned: set[tuple[str, str]],
    entrants: set[tuple[str, str]] | frozenset[tuple[str, str]],
    teams: dict[tuple[str, str], str],
    refused: dict[str, str],
) -> str:
    if isinstance(message, bytes):
        try:
            message = orjson.loads(message)
        except orjson.JSONDecodeError:
            return "undecodable"
        if not isinstance(message, dict):
            return "undecodable"
    competition = competitions.get(message["competition_id"])
    if competition is None:
        return "unknown_competition"
    cid, user = message["competition_id"], message["user_id"]
    if message["kind"] == "control":
        if message["event_id"] in applied_controls:
            return "duplicate"
        applied_controls.add(message["event_id"])
        for key in [key for key in histories if key[0] == cid and key[2] == user]:
            histories[key] = []
        if message["action"] == "ban_user":
            banned.add((cid, user))
        teams.pop((cid, user), None)
        return "applied"
    value = float(message["value"])
    moment = _parse_time(message["ts"])
    if competition.max_value is not None and value > competition.max_value:
        return "bad_value"
    received = _parse_time(message["received_at"])
    if moment < received - horizon:
        return "beyond_dedup_horizon"
    if (competition.starts_at and moment < competition.starts_at) or (
        competition.ends_at and moment >= competition.ends_at
    ):
        return "outside_competition"
    period = period_of(competition, moment)
    if period is not None and received > period[1] + timedelta(seconds=grace_s):
        return "late"
    if message["event_id"] in applied_scores:
        return "duplicate"
    if message["event_id"] in refused:
        return refused[message["event_id"]]
    if (cid, user) in banned:
        return "banned"
    if competition.join_required and (cid, user) not in entrants:
        refused[message["event_id"]] = "not_joined"
        return "not_joined"
    windows = ["alltime"] + ([period[0]] if period else [])
    if (
        competition.max_attempts is not None
        and len(histories[(cid, windows[-1], user)]) >= competition.max_attempts
    ):
        refused[message["event_id"]] = "attempts_exhausted"
        return "attempts_exhausted"
    applied_scores.add(message["event_id"])
    if competition.teams is not None and message.get("team_id") is not None:
        teams[(cid, user)] = message["team_id"]
    for window in windows:
        histories[(cid, window, user)].append((value, moment, arrival))
    return "applied"


def _standing(
    competition: OracleCompetition, events: list[tuple[float, datetime, int]]
) -> tuple[float, datetime]:
    if competition.operator == "sum":
        total = 0.0
        for value, _, _ in sorted(events, key=lambda event: event[2]):
            total += value
        return total, max(moment for _, moment, _ in events)
    if competition.operator == "latest":
        value, moment, _ = max(events, key=lambda event: (event[1], event[2]))
        return value, moment
    values = [value for value, _, _ in events]
    best = max(values) if competition.sort_order == "desc" else min(values)
    assert not math.isnan(best)
    return best, min(moment for value, moment, _ in events if value == best)
