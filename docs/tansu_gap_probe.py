"""Reproduce the dev broker's skipped batches (docs/soak.md, "Accepted events lost: the cause").

tansu's produce path raises a partition's high watermark first and stores the batch object
afterwards (``tansu-storage/src/dynostore.rs``, ``produce``); its fetch lists the batch objects
below the high watermark and returns those from the fetch offset on. When two producers write
one partition at once and the later batch is stored before the earlier one, a fetch in
between returns the later batch: the client's position moves past the earlier batch, which it
never reads. Ingest runs as several replicas, each with its own producer, so the ranker saw
exactly this. The script starts a private broker, runs ``PRODUCERS`` producers writing small
batches to 4 partitions, tails them with one plain aiokafka consumer and prints every fetch
whose records did not start where the last ones ended:

    .venv/bin/python docs/tansu_gap_probe.py 40     # seconds; one run here: 1 gap in 221,365
"""

from __future__ import annotations

import asyncio
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.broker import start_broker
from devstack.processes import free_port

PRODUCERS = 3
PARTITIONS = 4
RECORDS_PER_SEND = 5


async def produce(bootstrap: str, topic: str, name: bytes, stop: asyncio.Event) -> int:
    """Send ``RECORDS_PER_SEND`` records to every partition, wait for the acks, repeat."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent = 0
    try:
        while not stop.is_set():
            deliveries = [
                await producer.send(topic, b"%s-%d" % (name, sent + index), partition=partition)
                for index in range(RECORDS_PER_SEND)
                for partition in range(PARTITIONS)
            ]
            await asyncio.gather(*deliveries)
            sent += RECORDS_PER_SEND * PARTITIONS
            await asyncio.sleep(0.002)
    finally:
        await producer.stop()
    return sent


async def probe(duration_s: float) -> None:
    """Tail the partitions for ``duration_s`` and print the skipped offsets."""
    port = free_port()
    broker = start_broker("127.0.0.1", port)
    bootstrap = f"127.0.0.1:{port}"
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic("gaps", PARTITIONS, 1)])
        await admin.close()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, fetch_max_wait_ms=10, enable_auto_commit=False
        )
        await consumer.start()
        partitions = [TopicPartition("gaps", partition) for partition in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        stop = asyncio.Event()
        producers = [
            asyncio.create_task(produce(bootstrap, "gaps", b"p%d" % index, stop))
            for index in range(PRODUCERS)
        ]
        expected = dict.fromkeys(partitions, 0)
        read = 0
        started = time.monotonic()
        while time.monotonic() - started < duration_s:
            for tp, records in (await consumer.getmany(timeout_ms=100)).items():
                if records[0].offset != expected[tp]:
                    print(
                        f"{time.monotonic() - started:6.2f} s: partition {tp.partition} skipped"
                        f" offsets {expected[tp]}-{records[0].offset - 1}"
                    )
                expected[tp] = records[-1].offset + 1
                read += len(records)
        stop.set()
        sent = sum(await asyncio.gather(*producers))
        await consumer.stop()
        print(f"{sent} records sent, {read} read")
    finally:
        broker.stop()


if __name__ == "__main__":
    asyncio.run(probe(float(sys.argv[1]) if len(sys.argv) > 1 else 40.0))
