"""The ranker's record decoding and fetch filtering: the fast path decodes exactly as the model."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka.structs import ConsumerRecord
from prometheus_client import REGISTRY

from services.ranker import metrics
from services.ranker.consumer import accepted
from services.ranker.records import Score, decode
from shared.schemas.score_event import ScoreEvent, parse_topic_message

T0 = datetime(2026, 3, 29, 0, 59, 59, 999_999, tzinfo=UTC)
BASE: dict[str, Any] = {
    "v": 1, "kind": "score", "event_id": "e-1", "competition_id": "c1", "user_id": "u.1",
    "value": 12.5, "ts": "2026-03-29T00:59:59.999999Z", "received_at": "2026-03-29T01:00:00Z",
    "metadata": {},
}  # fmt: skip

# (field overrides, whether the fast path takes the record; the model decides the rest)
VARIANTS: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"value": 7}, True),
    ({"value": -0.0}, True),
    ({"value": 2**60}, True),
    ({"v": None}, False),
    ({"ts": "2026-03-29T02:30:00.5+02:00"}, True),
    ({"ts": T0.astimezone(ZoneInfo("Asia/Kathmandu")).isoformat()}, True),
    ({"ts": "2026-03-29T00:59:59+00:00"}, True),
    ({"metadata": {"a": 1, "b": "x", "c": None, "d": True, "e": 1.5}}, True),
    ({"extra": "ignored"}, True),
    ({"value": "12.5"}, False),  # the model reads numeric strings
    ({"ts": 1774745999.5}, False),  # and Unix times
    ({"ts": "2026-03-29 00:59:59Z"}, False),
    ({"ts": "2026-03-29T00:59:59.1234567Z"}, False),
    ({"ts": "2026-03-29T00:59:59z"}, False),
    ({"ts": "2026-03-29T00:59:59+0100"}, False),
    ({"ts": "2026-03-29T00:59:59"}, False),  # no offset: undecodable
    ({"ts": "2026-03-29T24:00:00Z"}, False),
    ({"ts": "2026-W13-7T00:59:59Z"}, False),
    ({"metadata": {"big": 2**70}}, False),  # orjson would read it as a float
    ({"metadata": {"big": 2**64 - 1, "small": -(2**63)}}, True),  # orjson's own range
    ({"metadata": {"big": 2**64}}, False),
    ({"metadata": {"small": -(2**63) - 1}}, False),
    ({"metadata": {"nested": {"a": 1}}}, False),
    ({"metadata": None}, False),
    ({"user_id": "u 1"}, False),
    ({"user_id": ""}, False),
    ({"competition_id": "c" * 65}, False),
    ({"event_id": "é"}, False),
    ({"event_id": 5}, False),
    ({"value": True}, False),
    ({"value": None}, False),
    ({"v": 2}, False),
    ({"v": 1.0}, False),
    ({"kind": "control", "action": "ban_user"}, False),
    ({"kind": "other"}, False),
    ({"team_id": "red"}, True),
    ({"team_id": None}, True),
    ({"team_id": "r d"}, False),
    ({"team_id": 7}, False),
    ({"team_id": "t" * 65}, False),
]


def _encoded(overrides: dict[str, Any]) -> bytes:
    return json.dumps({**BASE, **overrides}).encode()  # json: integers beyond 64 bits too


@pytest.mark.parametrize(("overrides", "fast"), VARIANTS)
def test_decode_matches_the_topic_model(overrides: dict[str, Any], fast: bool) -> None:
    raw = _encoded(overrides)
    event = decode(3, 7, b"c1", raw)
    assert (event.partition, event.offset, event.key, event.value) == (3, 7, b"c1", raw)
    assert isinstance(event.message, Score) is fast
    try:
        model = parse_topic_message(raw)
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        refused = str(error)[:500]
    else:
        refused = ""
    if refused:
        assert event.message is None
        assert event.decode_error == refused
        return
    assert event.message is not None
    assert event.decode_error == ""
    if isinstance(model, ScoreEvent):
        assert event.message.kind == "score"
        got = event.message
        assert (got.event_id, got.competition_id, got.user_id) == (
            model.event_id, model.competition_id, model.user_id
        )  # fmt: skip
        assert type(got.value) is float
        assert (got.value, got.ts, got.received_at) == (model.value, model.ts, model.received_at)
        assert got.ts.utcoffset() == model.ts.utcoffset()
        assert got.metadata == model.metadata
        assert got.team_id == model.team_id
        assert [type(value) for value in got.metadata.values()] == [
            type(value) for value in model.metadata.values()
        ]
    else:
        assert event.message == model


def test_an_integer_beyond_64_bits_is_refused_not_applied() -> None:
    """The ranker writes metadata through orjson: a record it could not write would fail its
    batch on every retry, so it is undecodable (dead-lettered) instead."""
    for big in (2**64, -(2**63) - 1, 10**30):
        event = decode(0, 1, b"c1", _encoded({"metadata": {"n": big}}))
        assert event.message is None
        assert "integers must fit in 64 bits" in event.decode_error


def test_undecodable_and_empty_records_keep_the_error() -> None:
    assert decode(0, 1, None, b"{not json").message is None
    empty = decode(0, 2, None, None)
    assert (empty.message, empty.value) == (None, b"")
    assert empty.decode_error


def _records(partition: int, offsets: Iterable[int]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord("t", partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])
        for offset in offsets
    ]


def test_a_fetch_keeps_active_partitions_from_their_read_offset_in_order() -> None:
    fetch = {("t", 0): _records(0, range(5, 9)), ("t", 1): _records(1, range(0, 3))}
    fetch[("t", 2)] = _records(2, range(0, 2))
    read_offset: dict[Any, int | None] = {("t", 0): 7, ("t", 1): None}
    batch = accepted(fetch, {("t", 0), ("t", 1)}, set(), read_offset).batch
    assert [(r.partition, r.offset) for r in batch] == [(0, 7), (0, 8), (1, 0), (1, 1), (1, 2)]
    # the next offset to read; partition 2 is not active: untouched
    assert read_offset == {("t", 0): 9, ("t", 1): 3}
    assert accepted(fetch, {("t", 0)}, {("t", 2)}, read_offset).batch[-1].partition == 2
    assert accepted(fetch, None, set(), {}).batch  # no active set: every partition


def test_fetch_started_at_committed_offset_after_a_seek() -> None:
    # after a rebalance faust seeks to the committed offset and sets the read offset to it:
    # the record at that offset is the first to apply again
    read_offset: dict[Any, int | None] = {("t", 0): 5}
    batch = accepted({("t", 0): _records(0, range(5, 7))}, {("t", 0)}, set(), read_offset).batch
    assert [r.offset for r in batch] == [5, 6]


def test_records_beyond_the_read_offset_are_held_back_as_a_gap() -> None:
    # the broker handed out batch 12.. while batch 10-11 was not readable yet: taking 12..
    # and committing 15 would lose 10 and 11
    read_offset: dict[Any, int | None] = {("t", 0): 10, ("t", 1): 3}
    fetch = {("t", 0): _records(0, range(12, 15)), ("t", 1): _records(1, range(3, 5))}
    fetched = accepted(fetch, None, set(), read_offset)
    assert [(r.partition, r.offset) for r in fetched.batch] == [(1, 3), (1, 4)]
    assert fetched.gaps == {("t", 0): 10}
    assert fetched.contiguous == [("t", 1)]
    assert read_offset == {("t", 0): 10, ("t", 1): 5}  # partition 0 is read again from 10
    # behind and then beyond: still a gap (9 was applied, 10 and 11 are missing)
    again = accepted({("t", 0): _records(0, [9, 12])}, None, set(), read_offset)
    assert again.gaps == {("t", 0): 10}
    assert not again.batch
    # once the wait is over the gap is taken as real (transaction markers leave such offsets)
    tolerated = accepted(fetch, None, set(), read_offset, tolerated_gaps={("t", 0)})
    assert [r.offset for r in tolerated.batch] == [12, 13, 14]
    assert read_offset[("t", 0)] == 15
    # nothing known about the position (never seeked): nothing to compare with
    assert accepted(fetch, None, set(), {}).gaps == {}


def _fetched(outcome: str) -> float:
    value = REGISTRY.get_sample_value("podium_ranker_fetched_records_total", {"outcome": outcome})
    return value or 0.0


def test_every_fetched_record_is_counted_by_what_became_of_it() -> None:
    # a ranker that fetches and applies nothing must show it: dropped records are counted
    before = {outcome: _fetched(outcome) for outcome in metrics.FETCH_OUTCOMES}
    fetch = {("t", 0): _records(0, range(5, 9)), ("t", 1): _records(1, range(0, 3))}
    fetch[("t", 2)] = _records(2, range(4, 6))
    accepted(fetch, {("t", 0), ("t", 2)}, set(), {("t", 0): 7, ("t", 2): 2})
    counted = {outcome: _fetched(outcome) - before[outcome] for outcome in metrics.FETCH_OUTCOMES}
    assert counted == {
        "accepted": 2,
        "inactive_partition": 3,
        "behind_read_offset": 2,
        "rewound": 0,
        "gap": 2,
    }
