"""Team boards: the board id, and how members' standings add up to a team's.

A competition with ``teams`` keeps its team board like a competition of its own under the
board id ``<competition id>~teams`` ('~' is no identifier character: no competition can have
it): team standings (the team id in ``user_id``) in ``standings``, a version in
``standings_versions``, Redis keys and change messages under that id. So the paths that keep
boards right (the ranker's write checks and heals, the reconciler, rebuilds by readers and by
``podium rebuild``, deletion) cover team boards with the code they use for every board; only
the ranker computes team standings, from its members' standings in the batch's transaction.

The aggregate is a pure function of the members' standings (whatever their order), so a
replayed batch and the replay oracle compute the same: sums are exactly rounded
(``math.fsum``), the mean is that sum over the member count.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from shared.errors import NotFoundError
from shared.schemas.competition import Competition, SortOrder, TeamAggregate

TEAM_BOARD_SUFFIX = "~teams"
__all__ = [
    "TEAM_BOARD_SUFFIX",
    "MemberStanding",
    "TeamAggregate",
    "boards_of",
    "competition_of",
    "is_team_board",
    "required_team_board",
    "team_board",
    "team_board_id",
    "team_standing",
]


def team_board_id(competition_id: str) -> str:
    """The board id of a competition's team board."""
    return competition_id + TEAM_BOARD_SUFFIX


def is_team_board(board_id: str) -> bool:
    """Whether ``board_id`` names a team board."""
    return board_id.endswith(TEAM_BOARD_SUFFIX)


def competition_of(board_id: str) -> str:
    """The competition a board belongs to (itself for an individual board)."""
    return board_id.removesuffix(TEAM_BOARD_SUFFIX)


def team_board(competition: Competition) -> Competition:
    """The team board as a competition: same rules and rank style, the board id."""
    return competition.model_copy(update={"id": team_board_id(competition.id)})


def required_team_board(competition: Competition, field: str) -> Competition:
    """The competition's team board; 404 naming ``field`` (the request's part that asked for
    it) when the competition has none."""
    if competition.teams is None:
        raise NotFoundError(
            f"competition {competition.id!r} has no team board",
            details={"field": field, "competition_id": competition.id},
        )
    return team_board(competition)


def boards_of(
    competitions: dict[str, Competition], board_ids: Iterable[str]
) -> dict[str, Competition]:
    """The boards among ``board_ids`` that exist, as competitions, given their competitions
    (``competitions``, by id: look up ``competition_of`` of each board id). A team board of a
    competition without ``teams`` does not exist."""
    boards = {}
    for board_id in board_ids:
        competition = competitions.get(competition_of(board_id))
        if competition is None:
            continue
        if not is_team_board(board_id):
            boards[board_id] = competition
        elif competition.teams is not None:
            boards[board_id] = team_board(competition)
    return boards


MemberStanding = tuple[float, datetime, datetime]
"""(score, reached_at, last_event_ts) of one member in one window."""


def team_standing(
    aggregate: TeamAggregate, sort_order: SortOrder, members: Iterable[MemberStanding]
) -> MemberStanding | None:
    """A team's standing from its members' (None: no member has one).

    ``best``: the best member score, reached when the first member reached it; ``sum`` and
    ``mean``: reached when the last member's standing was. The newest event time is the
    members' newest.
    """
    rows = list(members)
    if not rows:
        return None
    newest = max(row[2] for row in rows)
    if aggregate is TeamAggregate.BEST:
        scores = [row[0] for row in rows]
        best = max(scores) if sort_order is SortOrder.DESC else min(scores)
        return best, min(row[1] for row in rows if row[0] == best), newest
    total = math.fsum(row[0] for row in rows)
    score = total if aggregate is TeamAggregate.SUM else total / len(rows)
    return score, max(row[1] for row in rows), newest
