"""The short fault soak (issue 7): the platform under load while processes and stores fail.

Two ingest replicas, two rankers, query and notifier run as separate processes; a ranker and an
ingest replica are SIGKILLed, Redis restarts empty, Redis restarts from a snapshot saved when
the faults began (every board older, built markers included), PostgreSQL connections are
terminated and the notifier is killed, while clients keep posting (retrying with the same event_id),
reading and listening. Every accepted event must be in PostgreSQL, Redis, the query API and
the WebSocket clients' final state exactly once.
"""

from __future__ import annotations

from pathlib import Path

from soak.runner import run_soak
from tests.conftest import SettingsFactory

SHORT_DURATION_S = 60.0
SHORT_RATE_EPS = 150.0


async def test_short_soak_loses_nothing_and_counts_nothing_twice(
    settings_factory: SettingsFactory, artifacts_dir: Path, tmp_path: Path
) -> None:
    report = await run_soak(
        settings_factory(),
        duration_s=SHORT_DURATION_S,
        rate_eps=SHORT_RATE_EPS,
        work_dir=tmp_path / "soak",
        report_path=artifacts_dir / "soak-report.json",
        command="pytest tests/e2e/test_soak.py",
    )
    events = report["events"]
    assert events["accepted"] > SHORT_DURATION_S * SHORT_RATE_EPS * 0.9
    assert events["lost"] == 0
    assert events["double_counted"] == 0
    assert events["rejected"] == 0
    assert report["stores_equal_oracle"] == {
        "postgres": True,
        "redis": True,
        "query_api": True,
        "websocket_clients": True,
    }, report["mismatches"]
    assert {fault["name"] for fault in report["faults"]} == {
        "ranker_kill",
        "ingest_kill",
        "redis_restart",
        "redis_snapshot_restore",
        "postgres_terminate",
        "notifier_kill",
    }
    assert all(fault["recovery_s"] is not None for fault in report["faults"])
    assert report["passed"]
