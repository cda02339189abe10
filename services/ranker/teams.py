"""Planning a batch's team boards: who is in which team, and the team standings after it.

Runs after the individual standings of the batch are final (:func:`services.ranker.planner.
plan_batch`), only for competitions with a team board. A user's team is the ``team_id`` of
their latest applied event carrying one; a removal or ban takes them out of their team. Each
team one of the batch's users left, joined or is in gets its standing recomputed in every
window such a user holds or held a standing in, from all its members' standings then
(:func:`shared.teams.team_standing`), and the result goes into the plan as the team board's
own absolute standings (``<cid>~teams``), compared with what PostgreSQL holds like any other.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from services.ranker.rules import Standing
from shared.teams import team_standing

if TYPE_CHECKING:
    from services.ranker.plan_state import BatchPlan, StandingKey, StoredState, UserKey

_new = tuple.__new__


def plan_teams(
    plan: BatchPlan,
    state: StoredState,
    current: dict[StandingKey, Standing],
    team_of: dict[UserKey, str | None],
) -> None:
    """Add the team boards' standings and membership changes to ``plan`` (in place)."""
    for cid, board in sorted(state.team_boards.items()):
        users = plan.touched.get(cid)
        if not users:
            continue
        competition = state.competitions[cid]
        assert competition.teams is not None
        aggregate, sort_order = competition.teams.aggregate, competition.sort_order
        members: dict[str, set[str]] = defaultdict(set)
        for (member_cid, user), team in state.team_members.items():
            if member_cid == cid:
                members[team].add(user)
        affected: dict[str, set[str]] = defaultdict(set)
        for user, windows in users.items():
            key = (cid, user)
            before = state.team_members.get(key)
            after = team_of.get(key, before)
            if after != before:
                plan.team_changes[key] = after
                if before is not None:
                    members[before].discard(user)
                if after is not None:
                    members[after].add(user)
            for in_team in (before, after):
                if in_team is not None:
                    affected[in_team].update(windows)
        board_users = plan.touched.setdefault(board.id, {})
        stored = state.standings
        for team, windows in sorted(affected.items()):
            team_windows = board_users.setdefault(team, set())
            for window in windows:
                rows = [
                    standing
                    for member in members[team]
                    if (standing := current.get((cid, window, member))) is not None
                ]
                result = team_standing(aggregate, sort_order, rows)
                board_key = (board.id, window, team)
                team_windows.add(window)
                if result is not None:
                    standing = _new(Standing, result)
                    plan.final[board_key] = standing
                    if standing != stored.get(board_key):
                        plan.upserts[board_key] = standing
                elif board_key in stored:
                    plan.deletes.add(board_key)
