"""The ingest's fast record path writes what the pydantic path wrote, where it wrote it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from services.ingest.records import encode_score, rfc3339
from shared.kafka_partitioning import KeyPartitioner
from shared.schemas.score_event import (
    ScoreEvent,
    ScoreEventIn,
    encode_topic_message,
    parse_topic_message,
)

RECEIVED = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        {"event_id": "e-1", "competition_id": "c-1", "user_id": "u-1", "value": 12.5},
        {
            "event_id": "e-2",
            "competition_id": "c-2",
            "user_id": "u-2",
            "value": 1e20,
            "ts": "2026-03-01T14:00:00+02:00",
            "metadata": {"level": 3, "mode": "ranked", "ok": True, "x": None, "f": 0.25},
        },
        {
            "event_id": "e-3",
            "competition_id": "c-3",
            "user_id": "u-3",
            "value": -3,
            "ts": "2026-03-01T12:00:00Z",
        },
        {"event_id": "e-4", "competition_id": "c-4", "user_id": "u-4", "value": 1, "team_id": "t"},
    ],
)
def test_encode_score_matches_the_model_encoding(body: dict[str, object]) -> None:
    event = ScoreEventIn.model_validate(body)
    fast = encode_score(event, rfc3339(RECEIVED))
    model = ScoreEvent(
        event_id=event.event_id,
        competition_id=event.competition_id,
        user_id=event.user_id,
        value=event.value,
        ts=event.ts or RECEIVED,
        received_at=RECEIVED,
        metadata=event.metadata,
        team_id=event.team_id,
    )
    assert parse_topic_message(fast) == model
    assert orjson.loads(fast) == orjson.loads(encode_topic_message(model))
    # date-times keep their offset on the wire, UTC as "Z" like pydantic writes it
    assert orjson.loads(fast)["received_at"] == "2026-03-01T12:30:15.123456Z"


@pytest.mark.parametrize(
    "moment",
    [
        RECEIVED,
        RECEIVED.replace(microsecond=0),
        datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_rfc3339_is_how_the_202_and_pydantic_write_date_times(moment: datetime) -> None:
    text = rfc3339(moment)
    assert text == moment.isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(text) == moment


@pytest.mark.parametrize("count", [1, 3, 4, 12])
def test_key_partitioner_agrees_with_aiokafka_default(count: int) -> None:
    partitioner = KeyPartitioner(max_keys=50)
    default = DefaultPartitioner()
    partitions = list(range(count))
    for index in range(300):  # more keys than the cache holds: clearing keeps answers right
        key = f"competition-{index}".encode()
        expected = default(key, partitions, partitions)
        assert partitioner.partition(key, partitions) == expected
        assert partitioner.partition(key, set(partitions)) == expected
