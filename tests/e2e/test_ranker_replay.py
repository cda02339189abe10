"""Acceptance 1 and 5: the ranker process(es) over the real broker end equal to the oracle."""

from __future__ import annotations

from pathlib import Path

from shared.devstack.processes import free_port
from shared.settings import Settings
from tests.support.ranker_harness import (
    assert_matches_oracle,
    build_workload,
    create_competitions,
    dead_letter_reasons,
    end_offsets,
    latest_tops,
    produce,
    wait_committed,
)
from tests.support.servers import podium_command, process_environment, running_process


async def test_replay_equals_oracle(settings: Settings, artifacts_dir: Path) -> None:
    workload = build_workload(seed=1, events=3000)
    expected = workload.expected(settings.ranker_period_grace_s)
    assert {"applied", "duplicate", "late", "banned", "bad_value", "undecodable",
            "unknown_competition", "outside_competition"} <= set(expected.fates)  # fmt: skip
    await create_competitions(settings, workload)
    positions = await produce(settings, workload.messages)
    ranker_settings = settings.model_copy(update={"ranker_port": free_port()})
    log = artifacts_dir / f"ranker-replay-{settings.db_schema}.log"
    command, environment = podium_command("ranker"), process_environment(ranker_settings)
    with running_process(command, environment, log) as ranker:
        await wait_committed(settings, end_offsets(positions), 90, [ranker])
    await assert_matches_oracle(settings, expected)
    # every dead letter once, with its reason (no crash, so no replays)
    assert await dead_letter_reasons(settings) == expected.dead_letters()
    # the newest change message of each window carries the final top N
    tops = await latest_tops(settings)
    for key, ranking in expected.standings.items():
        if ranking:
            assert tops[key] == expected.ranking(*key)[: settings.ranker_top_n], key
