"""Rank styles from a page's first rank, against the definitions counted over the whole board."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.rank_styles import percentile, rank_of, restyled, run_ranks
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import RankStyle


def defined_rank(style: RankStyle, scores: list[float], position: int) -> int:
    """The rank by definition (``scores`` best first: here, higher is better)."""
    score = scores[position]
    if style is RankStyle.STANDARD:
        return 1 + sum(1 for other in scores if other > score)
    if style is RankStyle.DENSE:
        return 1 + len({other for other in scores if other > score})
    return position + 1


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=40),
    st.sampled_from(list(RankStyle)),
    st.data(),
)
def test_a_run_anywhere_ranks_as_the_definitions(
    values: list[int], style: RankStyle, data: st.DataObject
) -> None:
    scores = sorted((float(value) for value in values), reverse=True)
    start = data.draw(st.integers(0, len(scores) - 1))
    stop = data.draw(st.integers(start + 1, len(scores)))
    score = scores[start]
    better = sum(1 for other in scores if other > score)
    dense_better = len({other for other in scores if other > score})
    first = rank_of(style, start, better, dense_better)
    assert run_ranks(style, start, first, scores[start:stop]) == [
        defined_rank(style, scores, position) for position in range(start, stop)
    ]
    top = [
        LeaderboardEntry(rank=index + 1, user_id=f"u{index}", score=value)
        for index, value in enumerate(scores)
    ]
    assert [entry.rank for entry in restyled(style, top)] == [
        defined_rank(style, scores, position) for position in range(len(scores))
    ]
    assert percentile(better, len(scores)) == 100.0 * (len(scores) - better) / len(scores)


def test_examples_of_each_style() -> None:
    scores = [50.0, 50.0, 40.0, 30.0, 30.0, 10.0]
    top = [LeaderboardEntry(rank=i + 1, user_id=f"u{i}", score=s) for i, s in enumerate(scores)]
    assert [e.rank for e in restyled(RankStyle.UNIQUE, top)] == [1, 2, 3, 4, 5, 6]
    assert [e.rank for e in restyled(RankStyle.STANDARD, top)] == [1, 1, 3, 4, 4, 6]
    assert [e.rank for e in restyled(RankStyle.DENSE, top)] == [1, 1, 2, 3, 3, 4]
    assert percentile(0, 6) == 100.0  # the best score, tied or not
    assert percentile(5, 6) == 100.0 / 6  # alone in last place
