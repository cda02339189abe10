"""Micro-benchmark of the ranker's per-batch work: decode + ``BatchApplier.apply``.

Real PostgreSQL, Redis and a private tansu broker (change messages are really produced);
Kafka consumption is left out so the number is the applier's own ceiling. Each run uses a
fresh schema, key prefix and topics, and cleans up after itself.

    .venv/bin/python -m bench.ranker_micro --events 100000 --batch 2000 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from devstack.broker import start_broker
from devstack.processes import free_port
from services.ranker.applier import BatchApplier, decode
from services.ranker.settings import RankerSettings
from shared.db import create_pool
from shared.event_partitions import maintain_partitions
from shared.kafka import create_producer, ensure_topics
from shared.migrations import migrate
from shared.redis_client import RedisClient, create_redis
from shared.redis_keys import prefix_pattern

OPERATORS = ("best", "latest", "sum")


def make_settings(bootstrap: str, batch: int) -> RankerSettings:
    """Ranker settings isolated to one run."""
    run = uuid.uuid4().hex[:10]
    return RankerSettings(
        env="test",
        log_json=False,
        jwt_secrets=["bench-secret-0123456789-0123456789-abcdef"],
        kafka_bootstrap_servers=bootstrap,
        kafka_partitions=3,
        database_url="postgresql://postgres@127.0.0.1:5432/test",
        redis_url="redis://127.0.0.1:6379/0",
        db_schema=f"bench_{run}",
        redis_key_prefix=f"bench:{run}:",
        topic_score_events=f"bench-score-{run}",
        topic_changes=f"bench-changes-{run}",
        topic_dead_letters=f"bench-score-{run}.dlq",
        ranker_batch_size=batch,
    )


def make_events(count: int, competitions: int, users: int, seed: int) -> list[bytes]:
    """``count`` encoded score events (about 0.5% duplicates of earlier event ids)."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    raw: list[bytes] = []
    for index in range(count):
        event_id = f"e{rng.randrange(index)}" if index and rng.random() < 0.005 else f"e{index}"
        ts = (now + timedelta(milliseconds=rng.randrange(3_600_000))).isoformat()
        raw.append(
            orjson.dumps(
                {
                    "v": 1,
                    "kind": "score",
                    "event_id": event_id,
                    "competition_id": f"c{rng.randrange(competitions)}",
                    "user_id": f"u{rng.randrange(users)}",
                    "value": float(rng.randrange(1000)),
                    "ts": ts,
                    "received_at": ts,
                    "metadata": {},
                }
            )
        )
    return raw


async def create_competitions(pool: asyncpg.Pool, count: int) -> None:
    """``count`` competitions mixing operators, sort orders and daily resets."""
    await pool.executemany(
        "INSERT INTO competitions (id, name, sort_order, operator, reset)"
        " VALUES ($1, $1, $2, $3, $4)",
        [
            (
                f"c{i}",
                "asc" if i % 5 == 0 else "desc",
                OPERATORS[i % 3],
                "daily" if i % 4 == 0 else "none",
            )
            for i in range(count)
        ],
    )


async def run_once(
    bootstrap: str, args: argparse.Namespace, raw: list[bytes]
) -> tuple[float, float]:
    """Apply ``raw`` in batches into a fresh schema; returns events/s and CPU µs per event.

    CPU is this process's (every thread: the producer's sender runs here too), so it is the
    applier's own cost without faust's consumer; PostgreSQL and Redis are other processes.
    """
    settings = make_settings(bootstrap, args.batch)
    await migrate(settings)
    await ensure_topics(settings)
    pool = await create_pool(settings)
    redis: RedisClient = create_redis(settings)
    producer = create_producer(settings)
    await producer.start()
    try:
        if args.weeks:  # the weekly score_events partitions a ranker creates at start-up
            async with pool.acquire() as connection:
                await maintain_partitions(
                    connection,
                    horizon=timedelta(days=settings.dedup_horizon_days),
                    now=datetime.now(UTC),
                    prune=False,
                )
        await create_competitions(pool, args.competitions)
        applier = BatchApplier(settings, pool, redis, producer)
        # no pre-build: a competition's first batch builds its board with its write
        warmup = [decode(0, i, b"", value) for i, value in enumerate(raw[: args.batch])]
        await applier.apply(warmup)
        started = time.perf_counter()
        cpu_started = time.process_time()
        for start in range(args.batch, len(raw), args.batch):
            chunk = raw[start : start + args.batch]
            await applier.apply([decode(0, start + i, b"", v) for i, v in enumerate(chunk)])
        elapsed = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        applied = len(raw) - args.batch
        return applied / elapsed, cpu_s * 1e6 / applied
    finally:
        await producer.stop()
        keys = [
            key
            async for key in redis.scan_iter(prefix_pattern(settings.redis_key_prefix), count=5000)
        ]
        for start in range(0, len(keys), 5000):
            await redis.delete(*keys[start : start + 5000])
        await redis.aclose()
        await pool.execute(f'DROP SCHEMA IF EXISTS "{settings.db_schema}" CASCADE')
        await pool.close()


async def main(args: argparse.Namespace) -> None:
    """Start a private broker, run the benchmark ``repeats`` times, print the median."""
    port = free_port()
    broker = start_broker("127.0.0.1", port)
    try:
        raw = make_events(args.events, args.competitions, args.users, args.seed)
        if args.gc_threshold:
            gc.freeze()  # as the ranker does after start-up: the events are long-lived
        rates, cpu_us = [], []
        for _ in range(args.repeats):
            rate, cpu = await run_once(f"127.0.0.1:{port}", args, raw)
            rates.append(rate)
            cpu_us.append(cpu)
            print(f"run: {rate:,.0f} events/s, {cpu:.1f} µs CPU/event", flush=True)
        print(
            f"median {statistics.median(rates):,.0f} events/s,"
            f" {statistics.median(cpu_us):.1f} µs CPU/event over {args.repeats} runs "
            f"(events={args.events}, batch={args.batch}, competitions={args.competitions}, "
            f"users={args.users})"
        )
    finally:
        broker.stop()


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--competitions", type=int, default=1000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument(
        "--weeks",
        action="store_true",
        help="create the weekly score_events partitions first (else every row is in DEFAULT)",
    )
    parser.add_argument(
        "--gc-threshold", type=int, default=0, help="gen-0 GC threshold (0: Python's default)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.gc_threshold:
        gc.set_threshold(arguments.gc_threshold, 50, 100)
    if arguments.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(main(arguments))
