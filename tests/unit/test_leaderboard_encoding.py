"""The Redis rank encoding: better scores first, earlier reached first on ties, exact values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from shared.leaderboard import encode_member, member_user_id, redis_score, standing_value
from shared.redis_keys import ranking_key
from shared.schemas.competition import SortOrder

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _rank_order(rows: list[tuple[str, float, datetime]], order: SortOrder) -> list[str]:
    """Sort as Redis ZRANGE does: by score, then by member bytes."""
    encoded = [(redis_score(value, order), encode_member(user, at)) for user, value, at in rows]
    return [member_user_id(member) for _, member in sorted(encoded)]


def test_desc_higher_first_and_ties_by_time() -> None:
    rows = [("late", 10.0, T0 + timedelta(seconds=1)), ("early", 10.0, T0), ("top", 11.0, T0)]
    assert _rank_order(rows, SortOrder.DESC) == ["top", "early", "late"]


def test_asc_lower_first_and_ties_by_time() -> None:
    rows = [("late", 9.5, T0 + timedelta(microseconds=1)), ("early", 9.5, T0), ("fast", 9.0, T0)]
    assert _rank_order(rows, SortOrder.ASC) == ["fast", "early", "late"]


def test_equal_time_falls_back_to_user_id() -> None:
    rows = [("b", 1.0, T0), ("a", 1.0, T0)]
    assert _rank_order(rows, SortOrder.DESC) == ["a", "b"]


@pytest.mark.parametrize("order", list(SortOrder))
@pytest.mark.parametrize("value", [0.0, -0.0, 1e-300, -1e300, 2.0**53 + 2, 123456.789, -5.5])
def test_values_round_trip_exactly(order: SortOrder, value: float) -> None:
    assert standing_value(redis_score(value, order), order) == value


def test_adjacent_doubles_rank_apart() -> None:
    low = 1_000_000.0
    high = math.nextafter(low, math.inf)
    assert _rank_order([("low", low, T0), ("high", high, T0)], SortOrder.DESC) == ["high", "low"]


def test_time_range_boundaries() -> None:
    assert encode_member("u", datetime(1970, 1, 1, tzinfo=UTC)).startswith("0" * 16 + ":")
    assert encode_member("u", datetime(2286, 11, 20, tzinfo=UTC))[:16].isdigit()
    with pytest.raises(ValueError, match="outside"):
        encode_member("u", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))
    with pytest.raises(ValueError, match="outside"):
        encode_member("u", datetime(2286, 11, 21, tzinfo=UTC))


def test_user_ids_with_colons_survive() -> None:
    assert member_user_id(encode_member("team:red:7", T0)) == "team:red:7"
    assert member_user_id(encode_member("x", T0).encode()) == "x"


def test_keys_share_the_competition_hash_tag() -> None:
    assert ranking_key("p:", "c1", "alltime") == "p:lb:{c1}:alltime:z"
