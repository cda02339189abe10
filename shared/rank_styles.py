"""Rank styles: how the rank a reader sees follows from the tie-broken order in Redis.

The order is always the same (better score first, then first-reached, then user id: see
:mod:`shared.leaderboard`); a competition's :class:`~shared.schemas.competition.RankStyle`
only decides the number shown:

- ``unique``: the 1-based position (1, 2, 3, 4);
- ``standard``: 1 + the users with a strictly better score ("1224");
- ``dense``: 1 + the distinct scores strictly better ("1223").

Inside a contiguous run of entries (a page, a top, a neighbourhood) only the first entry's
rank needs Redis: after it, an equal score keeps the rank and a new score takes the
position (standard) or the previous rank plus one (dense). So a page costs one count per
page, not per entry.

The *percentile* of a ranked user is ``100 * (total - better) / total``, where ``better``
is the count of users with a strictly better score: the share of the window's ranked users
the user beats or ties (the user included). The best score is at 100 whatever the ties; a
user alone in last place of 200 is at 0.5. It does not depend on the rank style.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import RankStyle


def rank_of(style: RankStyle, position: int, better: int, dense_better: int) -> int:
    """The 1-based rank of the user at 0-based ``position`` in ``style``.

    ``better`` counts the users with a strictly better score, ``dense_better`` the distinct
    scores strictly better (only read for ``dense``).
    """
    if style is RankStyle.STANDARD:
        return better + 1
    if style is RankStyle.DENSE:
        return dense_better + 1
    return position + 1


def run_ranks(style: RankStyle, start: int, first_rank: int, scores: Sequence[float]) -> list[int]:
    """The ranks of a contiguous run of entries at 0-based positions ``start``, ``start+1``…

    ``first_rank`` is the first entry's rank in ``style`` (its :func:`rank_of`); ``scores``
    are the entries' scores in order (equal scores are ties).
    """
    ranks: list[int] = []
    previous: float | None = None
    rank = first_rank
    for offset, score in enumerate(scores):
        if offset == 0:
            rank = first_rank
        elif style is RankStyle.UNIQUE:
            rank = start + offset + 1
        elif score != previous:
            rank = start + offset + 1 if style is RankStyle.STANDARD else rank + 1
        ranks.append(rank)
        previous = score
    return ranks


def restyled(
    style: RankStyle, entries: Sequence[LeaderboardEntry], first_rank: int | None = None
) -> list[LeaderboardEntry]:
    """``entries`` (contiguous, unique ranks) with their ranks in ``style``.

    ``first_rank`` is the first entry's rank in ``style``; when None the run must start at
    the top (rank 1), where every style agrees.
    """
    if style is RankStyle.UNIQUE or not entries:
        return list(entries)
    start = entries[0].rank - 1
    if first_rank is None:
        if start != 0:
            raise ValueError("a run that does not start at the top needs its first rank")
        first_rank = 1
    ranks = run_ranks(style, start, first_rank, [entry.score for entry in entries])
    return [
        entry if entry.rank == rank else entry.model_copy(update={"rank": rank})
        for entry, rank in zip(entries, ranks, strict=True)
    ]


def percentile(better: int, total: int) -> float:
    """The share (0-100] of ``total`` ranked users that a user with ``better`` users strictly
    ahead beats or ties (see the module docstring)."""
    if total <= 0:
        return 0.0
    return 100.0 * (total - better) / total
