"""`python -m bench.keyspace_micro` at a tiny size: it rebuilds unbuilt competitions beside a
growing keyspace and reports a mean per size (its own keys are removed after). Never timings:
what it measures is asserted in tests/integration/test_leaderboard_store.py (no SCAN)."""

from __future__ import annotations

from bench.keyspace_micro import run


async def test_the_keyspace_bench_reports_a_rebuild_time_per_size() -> None:
    results = await run([2_000, 0], rebuilds=3)
    assert list(results["rebuild_ms_by_other_keys"]) == ["0", "2000"]
    assert all(value > 0 for value in results["rebuild_ms_by_other_keys"].values())
