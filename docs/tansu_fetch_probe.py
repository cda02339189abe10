"""Reproduce the dev broker's limit (docs/soak.md, "The dev broker's limit").

tansu 0.6.0's in-memory storage keeps every produced batch as its own object and, for a fetch
behind the high watermark, lists every object of the partition before reading. This script
starts a private broker, produces ``STEPS`` x ``BATCHES_PER_STEP`` batches of
``RECORDS_PER_BATCH`` records to one partition and after each step times a fetch one batch
behind the tail (median of 20). The time grows with the batches stored, not the records:

    .venv/bin/python docs/tansu_fetch_probe.py 5000 6 1     # 30,000 one-record batches
    .venv/bin/python docs/tansu_fetch_probe.py 500 6 100    # 3,000 batches of 100 records
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.broker import start_broker
from devstack.processes import free_port

FETCHES_PER_STEP = 20


async def probe(batches_per_step: int, steps: int, records_per_batch: int) -> None:
    """Print the median fetch time behind the tail after each step of produced batches."""
    port = free_port()
    broker = start_broker("127.0.0.1", port)
    bootstrap = f"127.0.0.1:{port}"
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("probe", 1, 1)])
        await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await producer.start()
        await consumer.start()
        partition = TopicPartition("probe", 0)
        consumer.assign([partition])
        stored = 0
        for _ in range(steps):
            for _ in range(batches_per_step):
                batch = producer.create_batch()
                for _ in range(records_per_batch):
                    batch.append(key=None, value=b"x" * 50, timestamp=None)
                batch.close()
                await producer.send_batch(batch, "probe", partition=0)
            await producer.flush()
            stored += batches_per_step
            fetch_ms = []
            for _ in range(FETCHES_PER_STEP):
                consumer.seek(partition, (stored - 1) * records_per_batch)
                started = time.perf_counter()
                await consumer.getmany(partition, timeout_ms=2000, max_records=1)
                fetch_ms.append((time.perf_counter() - started) * 1000)
            print(
                f"batches stored {stored:>7,}, records {stored * records_per_batch:>9,}:"
                f" fetch behind the tail, median {statistics.median(fetch_ms):.1f} ms",
                flush=True,
            )
        await consumer.stop()
        await producer.stop()
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(probe(*(int(arg) for arg in sys.argv[1:4])))
