"""Acceptance 1 and 5: the ranker process(es) over the real broker end equal to the oracle."""

from __future__ import annotations

from pathlib import Path

from devstack.processes import free_port
from podium.settings import PlatformSettings
from tests.support.ranker_harness import (
    Position,
    assert_matches_oracle,
    build_workload,
    create_competitions,
    dead_letter_reasons,
    end_offsets,
    latest_tops,
    metric_samples,
    produce,
    ranker,
    wait_committed,
)
from tests.support.servers import wait_until_ready


async def test_replay_equals_oracle(settings: PlatformSettings, artifacts_dir: Path) -> None:
    workload = build_workload(seed=1, events=3000)
    expected = workload.expected(settings.ranker_period_grace_s)
    assert {"applied", "duplicate", "late", "banned", "bad_value", "undecodable",
            "unknown_competition", "outside_competition", "not_joined",
            "attempts_exhausted"} <= set(expected.fates)  # fmt: skip
    await create_competitions(settings, workload)
    positions = await produce(settings, workload.messages)
    log = artifacts_dir / f"ranker-replay-{settings.db_schema}.log"
    port = free_port()
    with ranker(settings, log, ranker_port=port) as process:
        await wait_committed(settings, end_offsets(positions), 90, [process])
        applied = await metric_samples(port, "podium_ranker_events_applied_total")
        duplicates = await metric_samples(port, "podium_ranker_duplicates_dropped_total")
        dead = await metric_samples(port, "podium_ranker_dead_letters_total")
        lag = await metric_samples(port, "podium_ranker_consumer_lag_records")
    assert process.returncode == 0  # SIGTERM: a clean shutdown
    await assert_matches_oracle(settings, expected)
    assert sum(applied.values()) == expected.fates.count("applied")
    assert sum(duplicates.values()) == expected.fates.count("duplicate")
    assert dead['{reason="banned"}'] == expected.dead_letters()["banned"]
    assert len(lag) == settings.kafka_partitions
    assert set(lag.values()) == {0.0}  # caught up
    # every dead letter once, with its reason (no crash, so no replays)
    assert await dead_letter_reasons(settings) == expected.dead_letters()
    # the newest change message of each window carries the final top N
    tops = await latest_tops(settings)
    for key, ranking in expected.standings.items():
        if ranking:
            assert tops[key] == expected.ranking(*key)[: settings.ranker_top_n], key


async def test_two_rankers_split_partitions_and_equal_the_oracle(
    settings: PlatformSettings, artifacts_dir: Path
) -> None:
    workload = build_workload(seed=5, events=3000)
    expected = workload.expected(settings.ranker_period_grace_s)
    await create_competitions(settings, workload)
    log = artifacts_dir / f"ranker-pair-{settings.db_schema}.log"
    ports = [free_port(), free_port()]
    options = {"ranker_batch_size": 50}
    with (
        ranker(settings, log, ranker_port=ports[0], **options) as first,
        ranker(settings, log, ranker_port=ports[1], **options) as second,
    ):
        # both must be serving before the stream starts, then it arrives over a few seconds
        for port in ports:
            await wait_until_ready(f"http://127.0.0.1:{port}")
        positions: list[Position] = []
        await produce(settings, workload.messages, chunk=100, pause_s=0.3, positions=positions)
        await wait_committed(settings, end_offsets(positions), 90, [first, second])
        committed_by = [
            await metric_samples(port, "podium_ranker_committed_offset") for port in ports
        ]
    await assert_matches_oracle(settings, expected)
    # each process committed offsets of its own partitions: the group split them
    assert all(committed_by), committed_by
