"""How members' standings add up to a team's (shared.teams.team_standing)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from shared.schemas.competition import SortOrder, TeamAggregate
from shared.teams import (
    boards_of,
    competition_of,
    is_team_board,
    team_board_id,
    team_standing,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_sum_is_exactly_rounded_whatever_the_order_of_members() -> None:
    members = [(0.1, at(1), at(1)), (0.2, at(3), at(5)), (0.3, at(2), at(2)), (1e16, at(0), at(0))]
    results = {
        team_standing(TeamAggregate.SUM, SortOrder.DESC, order)
        for order in itertools.permutations(members)
    }
    assert results == {(1e16 + 0.6, at(3), at(5))}  # one answer; reached: the latest member's


def test_best_follows_the_sort_order_and_the_first_member_to_reach_it() -> None:
    members = [(7.0, at(5), at(5)), (3.0, at(9), at(9)), (7.0, at(2), at(8)), (3.0, at(4), at(4))]
    assert team_standing(TeamAggregate.BEST, SortOrder.DESC, members) == (7.0, at(2), at(9))
    assert team_standing(TeamAggregate.BEST, SortOrder.ASC, members) == (3.0, at(4), at(9))


def test_mean_is_over_the_members_with_a_standing() -> None:
    members = [(10.0, at(1), at(1)), (20.0, at(2), at(2)), (40.0, at(3), at(3))]
    assert team_standing(TeamAggregate.MEAN, SortOrder.DESC, members) == (70 / 3, at(3), at(3))
    assert team_standing(TeamAggregate.MEAN, SortOrder.DESC, []) is None


def test_board_ids_never_collide_with_competition_ids() -> None:
    board = team_board_id("cup")
    assert board == "cup~teams"
    assert is_team_board(board)
    assert not is_team_board("cup")
    assert competition_of(board) == "cup"
    assert competition_of("cup") == "cup"
    assert boards_of({}, [board]) == {}
