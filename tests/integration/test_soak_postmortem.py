"""The soak's post-mortem tells the four stories of a lost event apart on a real broker."""

from __future__ import annotations

import orjson
from aiokafka import TopicPartition

from podium.settings import PlatformSettings
from shared.kafka import create_consumer, create_producer
from soak.postmortem import locate_lost


async def test_lost_events_are_placed_behind_past_or_off_the_topic(
    settings: PlatformSettings,
) -> None:
    topic = settings.topic_score_events
    producer = create_producer(settings)
    await producer.start()
    try:
        for index in range(6):
            body = orjson.dumps({"event_id": f"e-{index}", "competition_id": "c"})
            await producer.send_and_wait(topic, body, partition=1)
        await producer.send_and_wait(topic, b"not json", partition=1)
        await producer.send_and_wait(topic, orjson.dumps({"event_id": "e-9"}), partition=0)
        await producer.send_and_wait(
            settings.topic_dead_letters,
            orjson.dumps({"event_id": "e-9"}),
            partition=0,
            headers=[("reason", b"late")],
        )
    finally:
        await producer.stop()
    group = create_consumer(
        settings, topic, group_id=settings.ranker_group_id, enable_auto_commit=False
    )
    await group.start()
    try:
        await group.getmany(timeout_ms=5_000)  # joined: the commit below is the group's
        await group.commit({TopicPartition(topic, 1): 4})
    finally:
        await group.stop()

    found = await locate_lost(settings, {"e-2", "e-5", "e-9", "never-sent"})

    assert found["committed"][1] == 4
    assert found["end_offsets"][1] == 7
    assert found["events"]["e-2"] == [
        {"partition": 1, "offset": 2, "story": "behind the committed offset: committed past it"}
    ]
    assert found["events"]["e-5"] == [
        {"partition": 1, "offset": 5, "story": "at or past the committed offset: not read"}
    ]
    assert found["events"]["e-9"][0]["partition"] == 0
    assert found["events"]["never-sent"] == "not on the topic"
    assert found["dead_letters"] == {"e-9": "late"}
