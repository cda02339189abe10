"""Ranker throughput and CPU: drain a pre-filled topic with one, then two ``podium ranker``s.

The topic is filled before the rankers start (aiokafka batches, fast); the figures are the
events applied per second over the steady window (from the first committed offset every ranker
reports to the last poll) and the CPU seconds per applied event of the ranker, PostgreSQL
and Redis over the same window (bench/server_cpu.py). PostgreSQL must hold every event at the
end (all stores are written: PostgreSQL, Redis and change messages). tansu's ``end_offsets``
are wrong, so the produced count is our own.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from bench.config import BenchConfig
from bench.profile import profiled
from bench.server_cpu import CpuSnapshot, ServerPids, server_pids, us_per_event
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


@dataclass(frozen=True, slots=True)
class Drain:
    """One drain: which topic and consumer group, how many ranker processes, which events."""

    name: str
    topic: str
    group_id: str
    rankers: int
    seed: int


async def run_ranker_phase(
    stack: BenchStack, config: BenchConfig, profile_path: Path | None = None
) -> dict[str, Any]:
    """Drain a pre-filled topic with one ranker, then another one with two rankers.

    The one-ranker figures are the phase's (``events_s``, ``cpu_us_per_event``, the
    PostgreSQL/Redis server CPU per event); the two-ranker drain (its own topic, group and
    event ids, same competitions and users) adds ``two_rankers_events_s`` and its details.
    Only the one-ranker drain is profiled (``profile_path``).
    """
    settings = stack.settings
    one = await drain(
        stack,
        config,
        Drain("ranker", settings.topic_score_events, settings.ranker_group_id, 1, seed=1),
        profile_path,
    )
    topic_two = f"{settings.topic_score_events}.bench-drain2"
    await create_topic(settings, topic_two)
    two = await drain(
        stack,
        config,
        Drain("ranker-two", topic_two, f"{settings.ranker_group_id}-two", 2, seed=2),
        None,
    )
    return {
        **one,
        "two_rankers_events_s": two["events_s"],
        "two_rankers_cpu_us_per_event": two["cpu_us_per_event"],
        "two_rankers": two,
    }


async def create_topic(settings: RankerSettings, topic: str) -> None:
    """Create ``topic`` with the run's partition count."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, settings.kafka_partitions, 1)])
    finally:
        await admin.close()


async def drain(
    stack: BenchStack, config: BenchConfig, plan: Drain, profile_path: Path | None
) -> dict[str, Any]:
    """Pre-fill ``plan.topic``, start the rankers, time the drain until all is committed.

    The steady window opens when every ranker process reports a committed offset on its
    ``/metrics`` (faust's start-up and group join excluded; with two rankers, after both
    joined) and closes at the last poll; events/s and CPU per event are over that window.
    """
    settings = stack.settings.model_copy(
        update={"topic_score_events": plan.topic, "ranker_group_id": plan.group_id}
    )
    raw = topic_messages(config.ranker_events, config.competitions, config.users, plan.seed)
    records = [
        (competition_id(index % config.competitions), value) for index, value in enumerate(raw)
    ]
    fill_started = time.monotonic()
    per_partition = await prefill(settings, records)
    fill_s = time.monotonic() - fill_started
    expected = sum(per_partition.values())
    partitions = sorted(per_partition)

    started = time.monotonic()
    names = [plan.name] if plan.rankers == 1 else [f"{plan.name}-{i}" for i in range(plan.rankers)]
    processes = [
        stack.start_ranker(name, topic_score_events=plan.topic, ranker_group_id=plan.group_id)
        for name in names
    ]
    ranker_pids = [process.process.pid for process in processes]
    broker_pids = [stack.broker.process.pid] if stack.broker is not None else []
    urls = [stack.services[name].url for name in names]
    window: Window | None = None
    last: tuple[float, int] = (started, 0)
    deadline = started + config.ranker_timeout_s
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            with profiled(ranker_pids[0] if profile_path else None, profile_path or Path()):
                while time.monotonic() < deadline:
                    for process in processes:
                        if process.process.poll() is not None:
                            raise RuntimeError(f"a ranker exited; see {process.log_path}")
                    done = await committed_total(settings, partitions)
                    now = time.monotonic()
                    if window is None and done > 0 and await all_committing(http, urls):
                        pids = await server_pids(settings)
                        window = Window(now, done, pids, snapshot(ranker_pids, broker_pids, pids))
                    last = (now, done)
                    if window is not None:
                        window.last = snapshot(ranker_pids, broker_pids, window.pids)
                    if done >= expected:
                        break
                    await asyncio.sleep(POLL_S)
    finally:
        for name in names:
            stack.stop(name)
    stored = await stored_events(settings)
    finished = last[1] >= expected
    since_start = last[1] / (last[0] - started)
    figure: dict[str, Any] = {
        "rankers": plan.rankers,
        "events": expected,
        "competitions": config.competitions,
        "users": config.users,
        "prefill_s": round(fill_s, 2),
        "prefill_events_s": round(expected / fill_s, 1) if fill_s else 0.0,
        # a drain shorter than one poll has no steady window: the whole time counts
        "events_s": round(since_start, 1),
        "events_s_incl_startup": round(since_start, 1),
        "drain_s": round(last[0] - started, 2),
        "committed": last[1],
        "postgres_events": stored,
        "finished": finished and stored >= expected,
        "cpu_us_per_event": None,
        "postgres_cpu_us_per_event": None,
        "postgres_backend_cpu_us_per_event": None,
        "redis_cpu_us_per_event": None,
        "broker_cpu_us_per_event": None,
    }
    if window is not None and last[0] > window.opened_s and last[1] > window.events:
        figure.update(window.figures(last, ranker_pids, broker_pids))
    return figure


def snapshot(ranker_pids: list[int], broker_pids: list[int], pids: ServerPids) -> CpuSnapshot:
    """CPU seconds of the rankers, the broker and the servers now."""
    servers = [*pids.postgres_backends, *pids.postgres_background]
    return CpuSnapshot.take([*ranker_pids, *broker_pids, *servers, *filter(None, [pids.redis])])


@dataclass
class Window:
    """The steady part of a drain: where it opened and the CPU seconds at both ends."""

    opened_s: float
    events: int
    pids: ServerPids
    first: CpuSnapshot
    last: CpuSnapshot | None = None

    def figures(
        self, last: tuple[float, int], ranker_pids: list[int], broker_pids: list[int]
    ) -> dict[str, Any]:
        """Events/s and CPU per event of every process over the window.

        ``postgres_cpu_us_per_event``: the run's own backends plus PostgreSQL's WAL writer,
        checkpointer and background writer (those serve every client of the server, so other
        users of a shared machine add to them); ``postgres_backend_cpu_us_per_event``: the
        backends alone. ``redis_cpu_us_per_event``: the whole Redis server.
        """
        assert self.last is not None
        events = last[1] - self.events
        end = self.last

        def per_event(pids: list[int] | tuple[int, ...]) -> float | None:
            return us_per_event(end.used_since(self.first, pids), events)

        backends = self.pids.postgres_backends
        return {
            "events_s": round(events / (last[0] - self.opened_s), 1),
            "window_events": events,
            "window_s": round(last[0] - self.opened_s, 2),
            "cpu_us_per_event": per_event(ranker_pids),
            "postgres_cpu_us_per_event": (
                per_event([*backends, *self.pids.postgres_background]) if backends else None
            ),
            "postgres_backend_cpu_us_per_event": per_event(backends) if backends else None,
            "postgres_backends": len(backends),
            "redis_cpu_us_per_event": (
                per_event([self.pids.redis]) if self.pids.redis is not None else None
            ),
            "broker_cpu_us_per_event": per_event(broker_pids) if broker_pids else None,
        }


async def all_committing(http: httpx.AsyncClient, urls: list[str]) -> bool:
    """Whether every ranker's ``/metrics`` shows a committed offset (it owns partitions and
    has applied a batch): with two rankers, both have joined the group."""
    for url in urls:
        try:
            text = (await http.get(f"{url}/metrics")).text
        except httpx.HTTPError:
            return False
        if "\npodium_ranker_committed_offset{" not in text:
            return False
    return True


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
