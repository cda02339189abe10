"""bench/broker_micro.py: the embedded broker's CPU as its partitions' stored batches grow."""

from __future__ import annotations

from bench.broker_micro import measure


async def test_the_broker_micro_benchmark_measures_each_level_of_stored_batches() -> None:
    results = await measure([0, 150], rate=50.0, seconds=1.0)
    assert [result["stored_batches_per_partition"] for result in results] == [0, 150]
    # a broker that fetched and stored the trickle used some CPU at every level
    assert all(0.0 < result["broker_core"] < 2.0 for result in results)
