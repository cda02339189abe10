"""Where lost events are: the topic's copy of each, and the ranker group's committed offsets.

A lost event (accepted with 202, never in PostgreSQL) has one of four stories, and each points
at a different component: not on the topic at all (ingest answered 202 for a record the broker
does not hold), dead-lettered (a ranker judged it unappliable: the reason says why), on the
topic *behind* its partition's committed offset (a ranker committed past a record it never
applied), or at or past the committed offset (the ranker group stopped reading that
partition). The soak reads the score and dead-letter topics once, outside any group, when
events are missing, and puts each one's partition, offset and story into the report.
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from aiokafka import TopicPartition

from services.ranker.applier import REASON_HEADER
from services.settings import AllServicesSettings
from shared.kafka import create_consumer

READ_TIMEOUT_MS = 2_000

MAX_RECORDS = 5_000


async def locate_lost(settings: AllServicesSettings, event_ids: set[str]) -> dict[str, Any]:
    """Each lost event's copies on the score topic and the group's committed offsets."""
    topic = settings.topic_score_events
    reader = create_consumer(settings, group_id=None, enable_auto_commit=False)
    group = create_consumer(settings, group_id=settings.ranker_group_id, enable_auto_commit=False)
    await reader.start()
    await group.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        end_offsets = await reader.end_offsets(partitions)
        committed: dict[int, int | None] = {}
        for tp in partitions:
            committed[tp.partition] = await group.committed(tp)
        copies = await _find_copies(reader, end_offsets, event_ids)
        dead_letters = await _dead_letters(settings, event_ids)
    finally:
        with contextlib.suppress(Exception):
            await reader.stop()
        with contextlib.suppress(Exception):
            await group.stop()
    return {
        "end_offsets": {tp.partition: offset for tp, offset in end_offsets.items()},
        "committed": committed,
        "events": {
            event_id: [
                {
                    "partition": partition,
                    "offset": offset,
                    "story": story(offset, committed.get(partition)),
                }
                for partition, offset in copies.get(event_id, [])
            ]
            or "not on the topic"
            for event_id in sorted(event_ids)
        },
        "dead_letters": dead_letters,
    }


def story(offset: int, committed: int | None) -> str:
    """Which side of its partition's committed offset a record is on."""
    if committed is None or offset >= committed:
        return "at or past the committed offset: not read"
    return "behind the committed offset: committed past it"


async def _dead_letters(settings: AllServicesSettings, event_ids: set[str]) -> dict[str, str]:
    """The reason of each of ``event_ids`` found on the dead-letter topic."""
    topic = settings.topic_dead_letters
    reader = create_consumer(settings, group_id=None, enable_auto_commit=False)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        end_offsets = await reader.end_offsets(partitions)
        reasons: dict[str, str] = {}
        await _find_copies(reader, end_offsets, event_ids, reasons)
        return reasons
    finally:
        with contextlib.suppress(Exception):
            await reader.stop()


async def _find_copies(
    reader: Any,
    end_offsets: dict[TopicPartition, int],
    event_ids: set[str],
    reasons: dict[str, str] | None = None,
) -> dict[str, list[tuple[int, int]]]:
    """Every (partition, offset) holding one of ``event_ids``, reading up to the end offsets
    (and into ``reasons``, each one's ``reason`` header: the dead-letter topic's)."""
    copies: dict[str, list[tuple[int, int]]] = {}
    remaining = {tp for tp, end in end_offsets.items() if end > 0}
    while remaining:
        fetched = await reader.getmany(timeout_ms=READ_TIMEOUT_MS, max_records=MAX_RECORDS)
        if not fetched:
            break  # the broker stopped answering: report what was found
        for tp, records in fetched.items():
            for record in records:
                with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
                    event_id = orjson.loads(record.value).get("event_id")
                    if event_id in event_ids:
                        copies.setdefault(event_id, []).append((tp.partition, record.offset))
                        if reasons is not None:
                            reasons[event_id] = (
                                dict(record.headers).get(REASON_HEADER, b"").decode()
                            )
            if records and records[-1].offset + 1 >= end_offsets[tp]:
                remaining.discard(tp)
    return copies
