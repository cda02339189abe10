"""Planning one batch: apply its events in order to the stored state, in memory.

The planner decides, per event, whether it applies, is a duplicate or is dead-lettered, and
computes the resulting absolute standings. The repository then writes the plan in one
PostgreSQL transaction and the store writes the same absolute standings to Redis, so a replay
of the batch produces the same writes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from services.ranker.plan_state import (
    BatchPlan,
    DeadLetter,
    StandingKey,
    StoredState,
    UserKey,
)
from services.ranker.records import ControlMessage, IncomingEvent, ScoreMessage
from services.ranker.rules import (
    NO_HORIZON,
    CompetitionRules,
    DeadLetterReason,
    Standing,
)
from services.ranker.teams import plan_teams
from shared.schemas.score_event import ControlAction

__all__ = [
    "BatchPlan",
    "DeadLetter",
    "IncomingEvent",
    "StandingKey",
    "StoredState",
    "UserKey",
    "plan_batch",
    "users_of",
]


def users_of(events: list[IncomingEvent]) -> set[UserKey]:
    """Every (competition, user) the decoded events of a batch refer to."""
    return {
        (event.message.competition_id, event.message.user_id)
        for event in events
        if event.message is not None
    }


def plan_batch(
    events: list[IncomingEvent],
    state: StoredState,
    grace_s: int,
    horizon: timedelta = NO_HORIZON,
) -> BatchPlan:
    """Apply ``events`` in order to ``state`` and return the plan (``state`` is not changed).

    A score beyond the dedup ``horizon`` (or older than ``state.pruned_before``) is
    dead-lettered before the duplicate check: its stored row may be gone.

    Events are taken in batch order (a competition's events come from one partition, in
    order); each competition's rules are prepared once (:class:`CompetitionRules`), and each
    (competition, window, user) standing is folded in memory, so PostgreSQL and Redis get one
    write per standing however many events the batch had for it.

    Every touched user is written to Redis in every window they hold a standing in: the
    windows of this batch's events (duplicates included, so a replay rewrites Redis) plus
    the windows PostgreSQL holds for them.
    """
    plan = BatchPlan()
    current = dict(state.standings)
    stored_windows: dict[UserKey, set[str]] = defaultdict(set)
    for cid, window, user in current:
        stored_windows[(cid, user)].add(window)
    seen_scores = set(state.known_score_ids)
    seen_controls = set(state.known_control_ids)
    banned = set(state.banned)
    attempts = dict(state.attempts)
    refused = dict(state.refused)
    team_of: dict[UserKey, str | None] = {}  # the batch's team changes, in batch order
    team_boards = state.team_boards
    rules: dict[str, CompetitionRules | None] = {}
    touched, dead_letters, new_scores = plan.touched, plan.dead_letters, plan.new_scores
    new_standing = tuple.__new__  # Standing(...) without the NamedTuple's Python __new__

    for event in events:
        message = event.message
        if message is None:
            dead_letters.append(DeadLetter(event, DeadLetterReason.UNDECODABLE))
            continue
        cid = message.competition_id
        if cid in rules:
            competition_rules = rules[cid]
        else:
            competition = state.competitions.get(cid)
            competition_rules = rules[cid] = (
                CompetitionRules(competition, grace_s, horizon, state.pruned_before)
                if competition is not None
                else None
            )
        if competition_rules is None:
            dead_letters.append(DeadLetter(event, DeadLetterReason.UNKNOWN_COMPETITION))
            continue
        user = message.user_id
        if message.kind == "control":
            windows_of_user = touched[cid].setdefault(user, set())
            if _plan_control(
                plan, message, current, stored_windows, windows_of_user, seen_controls, banned
            ):
                _clear_attempts(plan, attempts, cid, user)
                if cid in team_boards:
                    team_of[(cid, user)] = None  # removed or banned: out of their team
            continue
        windows = competition_rules.judge(message)
        if isinstance(windows, DeadLetterReason):
            dead_letters.append(DeadLetter(event, windows))
            continue
        users = touched[cid]
        touched_windows = users.get(user)
        if touched_windows is None:
            users[user] = set(windows)
        else:
            touched_windows.update(windows)
        event_id = message.event_id
        if event_id in seen_scores:
            plan.duplicates += 1
            continue
        if refused and event_id in refused:  # decided before: the same verdict again
            dead_letters.append(DeadLetter(event, refused[event_id]))
            continue
        if banned and (cid, user) in banned:
            dead_letters.append(DeadLetter(event, DeadLetterReason.BANNED))
            continue
        if competition_rules.join_required and (cid, user) not in state.entrants:
            _refuse(plan, refused, event, message, DeadLetterReason.NOT_JOINED)
            continue
        limit = competition_rules.max_attempts
        if limit is not None:
            attempt_key = (cid, windows[-1], user)  # the period, or alltime without a reset
            used = attempts.get(attempt_key, 0)
            if used >= limit:
                _refuse(plan, refused, event, message, DeadLetterReason.ATTEMPTS_EXHAUSTED)
                continue
            attempts[attempt_key] = plan.attempts[attempt_key] = used + 1
        seen_scores.add(event_id)
        new_scores.append(message)
        if team_boards and cid in team_boards and message.team_id is not None:
            team_of[(cid, user)] = message.team_id
        value, ts = message.value, message.ts
        for window in windows:
            key = (cid, window, user)
            before = current.get(key)
            current[key] = (
                competition_rules.combine(before, value, ts)
                if before is not None
                else new_standing(Standing, (value, ts, ts))
            )

    stored = state.standings
    final, upserts, deletes = plan.final, plan.upserts, plan.deletes
    for cid, users in touched.items():
        for user, windows_of_user in users.items():
            held = stored_windows.get((cid, user))
            if held:
                windows_of_user.update(held)  # in place: the Redis write reads ``touched``
            for window in windows_of_user:
                key = (cid, window, user)
                after = current.get(key)
                if after is not None:
                    final[key] = after
                    if after != stored.get(key):
                        upserts[key] = after
                elif key in stored:
                    deletes.add(key)
    if team_boards:
        plan_teams(plan, state, current, team_of)
    return plan


def _plan_control(
    plan: BatchPlan,
    message: ControlMessage,
    current: dict[StandingKey, Standing],
    stored_windows: dict[UserKey, set[str]],
    windows_of_user: set[str],
    seen_controls: set[str],
    banned: set[UserKey],
) -> bool:
    """A control event in batch order: the user leaves every window they are in so far
    (stored or from this batch's scores, all of which are in ``windows_of_user``); a
    replayed one only marks the user for a Redis rewrite. True when it applied."""
    cid, user = message.competition_id, message.user_id
    plan.controlled[cid].add(user)
    if message.event_id in seen_controls:
        plan.duplicates += 1
        return False
    seen_controls.add(message.event_id)
    plan.new_controls.append(message)
    for window in stored_windows.pop((cid, user), set()) | windows_of_user:
        if current.pop((cid, window, user), None) is not None:
            windows_of_user.add(window)
    if message.action is ControlAction.BAN_USER and (cid, user) not in banned:
        banned.add((cid, user))
        plan.new_bans.append((cid, user))
    return True


def _refuse(
    plan: BatchPlan,
    refused: dict[str, DeadLetterReason],
    event: IncomingEvent,
    message: ScoreMessage,
    reason: DeadLetterReason,
) -> None:
    """Dead-letter a score for a reason that depends on state that changes later, and record
    the verdict: a replay of the batch, or a later record with the same event id, is refused
    the same way instead of being judged against the changed state."""
    refused[message.event_id] = reason
    plan.new_refusals.append((message, reason))
    plan.dead_letters.append(DeadLetter(event, reason))


def _clear_attempts(plan: BatchPlan, attempts: dict[StandingKey, int], cid: str, user: str) -> None:
    """A removed user starts their attempts afresh, like their standings (the stored rows
    are deleted before the batch's new counts are written)."""
    plan.attempts_cleared.add((cid, user))
    for key in [key for key in attempts if key[0] == cid and key[2] == user]:
        del attempts[key]
        plan.attempts.pop(key, None)
