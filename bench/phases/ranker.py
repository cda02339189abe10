"""Ranker throughput: drain a pre-filled topic with one ``podium ranker`` process.

The topic is filled before the ranker starts (aiokafka batches, fast); the figure is the
events applied per second between the first and the last committed offset we observe, and
PostgreSQL must hold every event at the end (all stores are written: PostgreSQL, Redis and
change messages). tansu's ``end_offsets`` are wrong, so the produced count is our own.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from bench.config import BenchConfig
from bench.profile import profiled
from bench.stack import BenchStack
from bench.workload import competition_id, topic_messages
from services.ranker.settings import RankerSettings
from shared.kafka import connection_options, create_producer

POLL_S = 0.5


async def prefill(settings: RankerSettings, messages: list[tuple[str, bytes]]) -> dict[int, int]:
    """Produce ``(key, value)`` records with acks=all; returns records per partition."""
    producer = create_producer(settings, linger_ms=50)
    await producer.start()
    per_partition: dict[int, int] = defaultdict(int)
    try:
        partitions = sorted(await producer.partitions_for(settings.topic_score_events))
        partitioner = DefaultPartitioner()  # the producer's own key → partition mapping
        by_partition: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, value in messages:
            encoded_key = key.encode()
            partition = partitioner(encoded_key, partitions, partitions)
            by_partition[partition].append((encoded_key, value))
        sends = []
        for partition in partitions:
            batch = producer.create_batch()
            for encoded_key, value in by_partition[partition]:
                if batch.append(key=encoded_key, value=value, timestamp=None) is None:
                    sends.append(
                        await producer.send_batch(
                            batch, settings.topic_score_events, partition=partition
                        )
                    )
                    batch = producer.create_batch()
                    batch.append(key=encoded_key, value=value, timestamp=None)
                per_partition[partition] += 1
            sends.append(
                await producer.send_batch(batch, settings.topic_score_events, partition=partition)
            )
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return dict(per_partition)


async def committed_total(settings: RankerSettings, partitions: list[int]) -> int:
    """Sum of the ranker group's committed offsets (records applied and committed)."""
    consumer = AIOKafkaConsumer(
        **connection_options(settings),
        group_id=settings.ranker_group_id,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        total = 0
        for partition in partitions:
            offset = await consumer.committed(
                TopicPartition(settings.topic_score_events, partition)
            )
            total += offset or 0
        return total
    finally:
        await consumer.stop()


async def run_ranker_phase(
    stack: BenchStack, config: BenchConfig, profile_path: Path | None = None
) -> dict[str, Any]:
    """Pre-fill, start the ranker, and time the drain until every record is committed
    (sampled by py-spy into ``profile_path`` when given)."""
    settings = stack.settings
    raw = topic_messages(config.ranker_events, config.competitions, config.users, seed=1)
    records = [
        (competition_id(index % config.competitions), value) for index, value in enumerate(raw)
    ]
    fill_started = time.monotonic()
    per_partition = await prefill(settings, records)
    fill_s = time.monotonic() - fill_started
    expected = sum(per_partition.values())
    partitions = sorted(per_partition)

    started = time.monotonic()
    process = stack.start_ranker()
    first: tuple[float, int] | None = None
    last: tuple[float, int] = (started, 0)
    deadline = started + config.ranker_timeout_s
    with profiled(process.process.pid if profile_path else None, profile_path or Path()):
        while time.monotonic() < deadline:
            if process.process.poll() is not None:
                raise RuntimeError(f"the ranker exited; see {process.log_path}")
            done = await committed_total(settings, partitions)
            now = time.monotonic()
            if done > 0 and first is None:
                first = (now, done)
            last = (now, done)
            if done >= expected:
                break
            await asyncio.sleep(POLL_S)
    stored = await stored_events(settings)
    finished = last[1] >= expected
    since_start = last[1] / (last[0] - started)
    # from the first commit on (faust's start-up and group join excluded); a drain shorter
    # than one poll has no such window, so the whole time counts
    steady_eps = since_start
    if first is not None and last[0] > first[0] and last[1] > first[1]:
        steady_eps = (last[1] - first[1]) / (last[0] - first[0])
    return {
        "events": expected,
        "competitions": config.competitions,
        "users": config.users,
        "prefill_s": round(fill_s, 2),
        "prefill_events_s": round(expected / fill_s, 1) if fill_s else 0.0,
        "events_s": round(steady_eps, 1),
        "events_s_incl_startup": round(since_start, 1),
        "drain_s": round(last[0] - started, 2),
        "committed": last[1],
        "postgres_events": stored,
        "finished": finished and stored >= expected,
    }


async def stored_events(settings: RankerSettings) -> int:
    """Rows in the run's ``score_events`` table."""
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        count: int = await connection.fetchval(
            f'SELECT count(*) FROM "{settings.db_schema}".score_events'  # noqa: S608
        )
        return count
    finally:
        await connection.close()
