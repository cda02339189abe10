"""The bench report renders what a run measured and says "not measured" for the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.cpu_shares import MachineCpu
from bench.docs import END, START, update_docs
from bench.report import NOT_MEASURED, TARGETS, ratios, table, targets
from bench.stages import parse_histograms, stage_deltas

FRESHNESS_PHASE = {
    "p50_ms": 20.0,
    "p99_ms": 40.0,
    "ws_p50_ms": 22.0,
    "ws_p99_ms": 60.0,
    "probes": 50,
    "probes_unseen": 0,
    "ws_unseen": 1,
    "achieved_eps": 995.0,
    "stages": {"query podium_query_change_lag_seconds": {"p50_ms": 5.0, "p99_ms": 9.0}},
}


def _results(figures: dict[str, Any]) -> dict[str, Any]:
    found = ratios(figures)
    return {"figures": figures, "ratios": found, "targets": targets(figures, found)}


def test_an_empty_run_renders_every_target_as_not_measured() -> None:
    results = _results({})
    assert [row["target"] for row in results["targets"]] == [t.name for t in TARGETS]
    assert all(row["value"] is None and row["met"] is None for row in results["targets"])
    assert results["ratios"] == {}
    text = table(results)
    assert text.count(NOT_MEASURED) >= 2 * len(TARGETS)


def test_targets_compare_with_their_bounds() -> None:
    figures = {
        "freshness": {"idle": FRESHNESS_PHASE, "1000": FRESHNESS_PHASE},
        "ranker": {"events_s": 40_000.0, "cpu_us_per_event": 24.0},
        "ingest": {"batch": {"events_s": 59_000.0, "req_s": 118.0}},
    }
    rows = {row["target"]: row for row in _results(figures)["targets"]}
    assert rows["freshness p99 idle, 202 → query API"]["met"] is True  # 40 <= 50
    assert rows["freshness p99 idle, 202 → WebSocket frame"]["met"] is False  # 60 > 50
    assert rows["freshness p99 at 1,000 events/s offered, 202 → WebSocket frame"]["met"] is True
    assert rows["freshness p99 at 5,000 events/s offered, 202 → query API"]["met"] is None
    assert rows["ranker CPU per applied event (one process)"]["met"] is True
    assert rows["ingest batch events/s (one worker)"]["met"] is False


def test_the_budget_table_lists_the_stages_and_unseen_probes() -> None:
    text = table(_results({"freshness": {"idle": FRESHNESS_PHASE}}))
    assert "| query: change emitted → cached pages retired | 5.0 / 9.0 |" in text
    assert "1 of 50 probes unseen" in text


def test_cpu_shares_count_each_role_over_the_window_and_a_process_started_inside_it() -> None:
    earlier = MachineCpu(10.0, {1: ("ranker", 5.0), 2: ("ingest", 1.0)}, busy_s=100.0, steal_s=1.0)
    later = MachineCpu(
        12.0,
        {1: ("ranker", 6.0), 2: ("ingest", 2.0), 3: ("ingest", 0.5), 4: ("k6", 0.2)},
        busy_s=103.0,
        steal_s=1.1,
    )
    shares = later.shares_since(earlier)
    # 1 s of the ranker over 2 s; ingest: 1 s of pid 2, and pid 3 started inside (0.5 s)
    assert shares == {
        "ingest": 0.75,
        "k6": 0.1,
        "ranker": 0.5,
        "machine_busy": 1.5,
        "machine_steal": 0.05,
    }


def test_the_cpu_share_table_shows_each_role_per_freshness_phase() -> None:
    idle = {**FRESHNESS_PHASE, "cpu_shares": {"ranker": 0.12, "machine_busy": 0.6}}
    loaded = {**FRESHNESS_PHASE, "cpu_shares": {"ranker": 0.39, "k6": 0.13}}
    text = table(_results({"freshness": {"idle": idle, "1000": loaded}}))
    assert "| CPU, share of one core | idle | 1,000/s |" in text
    assert "| ranker | 0.12 | 0.39 |" in text
    assert f"| k6 (load) | {NOT_MEASURED} | 0.13 |" in text


def test_the_run_time_is_held_against_the_ten_minute_budget() -> None:
    results = {**_results({}), "total_seconds": 640.0, "phase_seconds": {"ranker drain": 300.0}}
    assert "Run: 640 s, **over** the 600 s budget (ranker drain 300 s)." in table(results)


def test_stage_deltas_estimate_quantiles_from_bucket_differences() -> None:
    def exposition(counts: list[int], total: float) -> str:
        bounds = ["0.01", "0.02", "0.05", "+Inf"]
        lines = ["# TYPE podium_x_seconds histogram"]
        lines += [
            f'podium_x_seconds_bucket{{le="{bound}"}} {count}'
            for bound, count in zip(bounds, counts, strict=True)
        ]
        lines += [f"podium_x_seconds_count {counts[-1]}", f"podium_x_seconds_sum {total}"]
        return "\n".join(lines) + "\n"

    before = parse_histograms("query", exposition([5, 5, 5, 5], 0.01))
    after = parse_histograms("query", exposition([5, 105, 105, 105], 1.51))
    stage = stage_deltas(before, after)["query podium_x_seconds"]
    assert stage["count"] == 100
    assert stage["mean_ms"] == pytest.approx(15.0)
    assert 10.0 <= stage["p50_ms"] <= 20.0
    assert 10.0 <= stage["p99_ms"] <= 20.0


def test_update_docs_pastes_between_the_markers_and_only_for_a_full_run(tmp_path: Path) -> None:
    for name in ("README.md", "docs/performance.md"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"before\n{START}\nold table\n{END}\nafter\n")
    results = {
        "config": "full",
        "phases": "all",
        "total_seconds": 540.0,
        "machine": {"date": "2026-12-01T21:00:00+00:00", "nproc": 2, "cpu_model": "test CPU"},
        "table": "| new | table |",
    }
    for path in update_docs(results, tmp_path):
        text = path.read_text()
        assert "old table" not in text
        assert "| new | table |" in text
        assert "2026-12-01T21:00:00+00:00" in text
        assert text.startswith("before\n")
        assert text.endswith(f"{END}\nafter\n")
    with pytest.raises(ValueError, match="full"):
        update_docs({**results, "config": "smoke"}, tmp_path)
