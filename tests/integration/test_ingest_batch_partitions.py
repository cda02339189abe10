"""Batches are built per partition: same placement as single posts, in order, with headers."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from aiokafka.partitioner import DefaultPartitioner

from podium.settings import PlatformSettings
from services.ingest.app import create_app
from services.ingest.schemas import ScoreAccepted
from shared.kafka_headers import PRODUCER, REQUEST_ID, header_value
from shared.schemas.score_event import ScoreEvent, parse_topic_message
from tests.support.servers import running_app
from tests.support.topic_reader import read_topic

TokenFor = Callable[..., str]
COMPETITIONS = [f"cup-{index}" for index in range(6)]


async def test_batch_records_land_where_single_posts_do_in_request_order(
    settings: PlatformSettings, token_for: TokenFor
) -> None:
    admin = {"Authorization": f"Bearer {token_for('ops', 'admin')}"}
    server = {"Authorization": f"Bearer {token_for('game-server', 'scores:write:any')}"}
    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        for competition in COMPETITIONS:
            body = {"id": competition, "name": competition}
            response = await client.post("/api/v1/competitions", json=body, headers=admin)
            assert response.status_code == 201, response.text
        accepted: dict[str, ScoreAccepted] = {}
        for competition in COMPETITIONS:
            single = {
                "event_id": f"{competition}-single",
                "competition_id": competition,
                "user_id": "u0",
                "value": 1,
            }
            response = await client.post("/api/v1/scores", json=single, headers=server)
            assert response.status_code == 202, response.text
            accepted[competition] = ScoreAccepted.model_validate(response.json())
            assert response.json()["received_at"].endswith("Z")
        # 300 events interleaving the competitions: each competition's order must survive
        events = [
            {
                "event_id": f"b-{index:03d}",
                "competition_id": COMPETITIONS[index % len(COMPETITIONS)],
                "user_id": f"u{index}",
                "value": index,
                "metadata": {"i": index},
            }
            for index in range(300)
        ]
        response = await client.post(
            "/api/v1/scores/batch",
            json={"events": events},
            headers={**server, "X-Request-ID": "req-batch"},
        )
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 300

    records = await read_topic(settings, settings.topic_score_events)
    assert len(records) == len(COMPETITIONS) + 300
    partitions = list(range(settings.kafka_partitions))
    default = DefaultPartitioner()
    by_competition: dict[str, list[tuple[int, str]]] = {}
    for record in records:
        assert record.key is not None
        assert record.value is not None
        message = parse_topic_message(record.value)
        assert isinstance(message, ScoreEvent)
        key = record.key.decode()
        assert key == message.competition_id
        # exactly where aiokafka's own partitioner (and every single post) puts the key
        assert record.partition == default(record.key, partitions, partitions)
        assert header_value(record.headers, PRODUCER) == "game-server"
        by_competition.setdefault(key, []).append((record.partition, message.event_id))
        if message.event_id.endswith("-single"):
            # the 202 told the caller exactly what the topic holds
            assert accepted[key].event_id == message.event_id
            assert accepted[key].received_at == message.received_at
        if message.event_id.startswith("b-"):
            assert message.metadata == {"i": int(message.event_id[2:])}
            assert header_value(record.headers, REQUEST_ID) == "req-batch"
    for index, competition in enumerate(COMPETITIONS):
        placed = by_competition[competition]
        assert len({partition for partition, _ in placed}) == 1
        expected = [f"{competition}-single"] + [
            f"b-{i:03d}" for i in range(index, 300, len(COMPETITIONS))
        ]
        assert [event_id for _, event_id in placed] == expected
