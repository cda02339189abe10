"""Acceptance 2: the ranker killed at random points mid-stream ends equal to the oracle."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

from podium.settings import PlatformSettings
from tests.support.ranker_harness import (
    Position,
    assert_matches_oracle,
    build_workload,
    committed_offsets,
    create_competitions,
    end_offsets,
    produce,
    ranker,
    unapplied_below_commit,
    wait_committed,
)

# three SIGKILLs at random points, then a graceful stop mid-stream
STOPS = (signal.SIGKILL, signal.SIGKILL, signal.SIGKILL, signal.SIGTERM)
# small batches, and a short session: a killed member expires sooner, so restarts rejoin sooner
SHORT_SESSION = {
    "ranker_batch_size": 50,
    "kafka_session_timeout_ms": 3000,
    "kafka_heartbeat_interval_ms": 300,
}


async def test_sigkill_mid_stream_loses_and_double_counts_nothing(
    settings: PlatformSettings, artifacts_dir: Path
) -> None:
    rng = random.Random(7)
    workload = build_workload(seed=2, events=5000)
    expected = workload.expected(settings.ranker_period_grace_s)
    await create_competitions(settings, workload)
    positions: list[Position] = []
    # the stream keeps arriving while each ranker runs: every run gets its own slice of it,
    # produced at a steady pace from its start, and is stopped at a random point once it has
    # committed some; the last tenth comes after every stop, so each stop had work ahead of
    # it however slowly the rankers start on a loaded machine (a CI run's last stop once
    # came after the whole stream had been applied)
    held_back = len(workload.messages) // 10
    head, tail = workload.messages[:-held_back], workload.messages[-held_back:]
    step = -(-len(head) // len(STOPS))
    slices = [head[start : start + step] for start in range(0, len(head), step)]
    log = artifacts_dir / f"ranker-crash-{settings.db_schema}.log"
    options = SHORT_SESSION
    progress: list[dict[int, int]] = []
    for stop_signal, stream in zip(STOPS, slices, strict=True):
        before = await committed_offsets(settings)
        producing = asyncio.create_task(
            produce(settings, stream, chunk=40, pause_s=0.2, positions=positions)
        )
        with ranker(settings, log, **options) as process:
            # wait for this run to commit something, then stop it at a random point
            targets = {partition: offset + 1 for partition, offset in before.items()}
            await wait_committed(settings, targets, 60, [process], any_partition=True)
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            process.send_signal(stop_signal)
            exit_status = process.wait()
        await producing
        if stop_signal == signal.SIGTERM:
            assert exit_status == 0  # graceful: it commits only what it applied
        missing = await unapplied_below_commit(settings, workload.messages, positions, expected)
        assert missing == [], f"committed past unapplied events: {missing[:5]}"
        progress.append(await committed_offsets(settings))
    await produce(settings, tail, chunk=40, positions=positions)
    ends = end_offsets(positions)
    for committed in progress:  # every kill hit a ranker with work still ahead of it
        assert any(committed[p] < end for p, end in ends.items()), "a kill was not mid-stream"
    with ranker(settings, log, **options) as process:
        await wait_committed(settings, end_offsets(positions), 90, [process])
    assert progress[0] != progress[-1]
    await assert_matches_oracle(settings, expected)


async def test_rebalance_while_streaming_loses_nothing(
    settings: PlatformSettings, artifacts_dir: Path
) -> None:
    """Two rankers share the stream; one is SIGKILLed and later restarted, so the survivor
    goes through two rebalances (the dead member expiring, the new one joining) while records
    keep arriving. A fetch that spans a rebalance must neither be skipped nor committed past."""
    workload = build_workload(seed=11, events=4000)
    expected = workload.expected(settings.ranker_period_grace_s)
    await create_competitions(settings, workload)
    positions: list[Position] = []
    producing = asyncio.create_task(
        produce(settings, workload.messages, chunk=40, pause_s=0.1, positions=positions)
    )
    log = artifacts_dir / f"ranker-rebalance-{settings.db_schema}.log"
    options = SHORT_SESSION
    with ranker(settings, log, **options) as survivor:
        with ranker(settings, log, **options) as victim:
            first = {partition: 1 for partition in range(settings.kafka_partitions)}
            await wait_committed(settings, first, 60, [survivor, victim], any_partition=True)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
        await asyncio.sleep(4)  # the survivor takes every partition once the victim expires
        with ranker(settings, log, **options) as rejoined:
            await producing
            await wait_committed(settings, end_offsets(positions), 90, [survivor, rejoined])
            missing = await unapplied_below_commit(settings, workload.messages, positions, expected)
    assert missing == [], f"committed past unapplied events: {missing[:5]}"
    await assert_matches_oracle(settings, expected)
