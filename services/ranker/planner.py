"""Planning one batch: apply its events in order to the stored state, in memory.

The planner decides, per event, whether it applies, is a duplicate or is dead-lettered, and
computes the resulting absolute standings. The repository then writes the plan in one
PostgreSQL transaction and the store writes the same absolute standings to Redis, so a replay
of the batch produces the same writes.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from services.ranker.rules import (
    DeadLetterReason,
    Standing,
    combine,
    event_windows,
    rejection_reason,
)
from shared.schemas.competition import Competition
from shared.schemas.score_event import ControlAction, ControlEvent, ScoreEvent

UserKey = tuple[str, str]  # (competition_id, user_id)
StandingKey = tuple[str, str, str]  # (competition_id, window, user_id)


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One record of the batch: where it came from, its raw bytes and what they decoded to."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    message: ScoreEvent | ControlEvent | None
    decode_error: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that can never apply, with the reason."""

    event: IncomingEvent
    reason: DeadLetterReason


@dataclass(frozen=True, slots=True)
class StoredState:
    """What PostgreSQL holds for the batch's events, read under the competition locks."""

    competitions: dict[str, Competition]
    known_score_ids: set[str]
    known_control_ids: set[str]
    banned: set[UserKey]
    standings: dict[StandingKey, Standing]


@dataclass
class BatchPlan:
    """The outcome of a batch: what to insert, upsert and delete, and what to report."""

    new_scores: list[ScoreEvent] = field(default_factory=list)
    new_controls: list[ControlEvent] = field(default_factory=list)
    new_bans: list[UserKey] = field(default_factory=list)
    upserts: dict[StandingKey, Standing] = field(default_factory=dict)
    deletes: set[StandingKey] = field(default_factory=set)
    final: dict[StandingKey, Standing] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    # per competition: users whose standings Redis must hold as in ``final``, with the windows
    # to write; users touched by a control event must also vanish from every other window
    touched: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(dict))
    controlled: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def users_of(events: list[IncomingEvent]) -> set[UserKey]:
    """Every (competition, user) the decoded events of a batch refer to."""
    return {
        (event.message.competition_id, event.message.user_id)
        for event in events
        if event.message is not None
    }


def plan_batch(events: list[IncomingEvent], state: StoredState, grace_s: int) -> BatchPlan:
    """Apply ``events`` in order to ``state`` and return the plan (``state`` is not changed)."""
    plan = BatchPlan()
    current = dict(state.standings)
    windows_by_user: dict[UserKey, set[str]] = defaultdict(set)
    for cid, window, user in current:
        windows_by_user[(cid, user)].add(window)
    seen_scores = set(state.known_score_ids)
    seen_controls = set(state.known_control_ids)
    banned = set(state.banned)

    for event in events:
        message = event.message
        if message is None:
            plan.dead_letters.append(DeadLetter(event, DeadLetterReason.UNDECODABLE))
            continue
        competition = state.competitions.get(message.competition_id)
        reason = rejection_reason(message, competition, grace_s)
        if reason is not None:
            plan.dead_letters.append(DeadLetter(event, reason))
            continue
        assert competition is not None
        user_key = (message.competition_id, message.user_id)
        touched_windows = plan.touched[message.competition_id].setdefault(message.user_id, set())
        if isinstance(message, ControlEvent):
            plan.controlled[message.competition_id].add(message.user_id)
            if message.event_id in seen_controls:
                plan.duplicates += 1
                continue
            seen_controls.add(message.event_id)
            plan.new_controls.append(message)
            for window in windows_by_user.pop(user_key, set()):
                del current[(message.competition_id, window, message.user_id)]
                touched_windows.add(window)
            if message.action is ControlAction.BAN_USER and user_key not in banned:
                banned.add(user_key)
                plan.new_bans.append(user_key)
            continue
        windows = event_windows(message, competition)
        touched_windows.update(windows)
        if message.event_id in seen_scores:
            plan.duplicates += 1
            continue
        if user_key in banned:
            plan.dead_letters.append(DeadLetter(event, DeadLetterReason.BANNED))
            continue
        seen_scores.add(message.event_id)
        plan.new_scores.append(message)
        for window in windows:
            key = (message.competition_id, window, message.user_id)
            current[key] = combine(
                competition.operator,
                competition.sort_order,
                current.get(key),
                message.value,
                message.ts,
            )
            windows_by_user[user_key].add(window)

    for cid, users in plan.touched.items():
        for user, user_windows in users.items():
            user_windows.update(windows_by_user.get((cid, user), set()))
            for window in user_windows:
                key = (cid, window, user)
                after = current.get(key)
                if after is not None:
                    plan.final[key] = after
                    if after != state.standings.get(key):
                        plan.upserts[key] = after
                elif key in state.standings:
                    plan.deletes.add(key)
    return plan
