"""The soak's per-second timeline and its PNG plot."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from soak.check import CheckResult
from soak.load import LoadStats, RequestRecord
from soak.plots import write_plots
from soak.report import build_report, format_report
from soak.timeline import BrokerCpu, RecordCounts, Timeline, broker_summary, timeline_rows

T0 = 1000.0


def _stats() -> LoadStats:
    stats = LoadStats()
    for second, events in ((0, 10), (1, 12), (2, 8)):
        stats.count(stats.offered_per_s, second, events)
        stats.count(stats.sent_per_s, second, events)
        stats.count(stats.accepted_per_s, second, events - 1)
    # 100 writes in second 1: 99 fast, one slow (the p99 is the 99th of 100)
    stats.requests += [RequestRecord("write", T0 + 1.5, 0.010, 202) for _ in range(98)]
    stats.requests += [RequestRecord("write", T0 + 1.5, 0.200, 202)]
    stats.requests += [RequestRecord("write", T0 + 1.5, 0.900, 202)]
    stats.requests += [RequestRecord("write", T0 + 2.1, 5.0, 0)]  # no answer: not a latency
    stats.requests += [RequestRecord("read", T0 + 0.2, 0.5, 200)]  # reads are not writes
    return stats


def _report(*, duration_s: float, rate_eps: float, lost: int) -> dict[str, Any]:
    """A report of the small load above, no faults and an empty check."""
    return build_report(
        command="test",
        duration_s=duration_s,
        rate_eps=rate_eps,
        run_started=T0,
        stats=_stats(),
        faults=[],
        check=CheckResult(),
        lost=lost,
        subscribers=0,
    )


def _timeline() -> Timeline:
    timeline = Timeline(platform=cast(Any, None), token="", run_started=T0)
    timeline.lag_records.update({0: 0.0, 2: 250.0})
    timeline.freshness_ms.update({0: 12.5, 1: None, 2: 40.0})
    timeline.broker_cpu_percent.update({1: 35.0, 2: 120.5})
    return timeline


def test_one_row_per_second_with_each_series() -> None:
    rows = timeline_rows(_stats(), _timeline())
    assert [row["second"] for row in rows] == [0, 1, 2]
    assert [row["offered"] for row in rows] == [10, 12, 8]
    assert [row["accepted"] for row in rows] == [9, 11, 7]
    assert [row["write_p99_ms"] for row in rows] == [None, 200.0, None]
    assert [row["ranker_lag_records"] for row in rows] == [0.0, None, 250.0]
    assert [row["freshness_ms"] for row in rows] == [12.5, None, 40.0]
    assert [row["broker_cpu_percent"] for row in rows] == [None, 35.0, 120.5]


def test_a_report_from_before_a_series_existed_still_plots(tmp_path: Path) -> None:
    rows = timeline_rows(_stats(), _timeline())
    for row in rows:
        del row["broker_cpu_percent"]
    report = {"events": {"accepted": 27, "lost": 0}, "timeline": rows}
    assert write_plots(report, tmp_path).read_bytes().startswith(b"\x89PNG")


def test_broker_cpu_is_read_from_the_running_broker_process() -> None:
    # a busy process stands in for the broker: its CPU is measured, not assumed
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        platform = SimpleNamespace(broker=SimpleNamespace(process=busy))
        cpu = BrokerCpu(cast(Any, platform))
        assert cpu.percent() is None  # the first reading is the baseline
        time.sleep(0.5)
        percent = cpu.percent()
        assert percent is not None
        assert percent > 30
    finally:
        busy.kill()
        busy.wait()
    assert cpu.percent() is None  # gone: no reading, no error


def test_the_plot_is_a_png_with_fault_markers(tmp_path: Path) -> None:
    report = {
        "command": "podium soak",
        "passed": True,
        "events": {"accepted": 27, "lost": 0},
        "faults": [{"name": "ranker_kill", "at_s": 1.0}],
        "timeline": timeline_rows(_stats(), _timeline()),
    }
    path = write_plots(report, tmp_path / "plots")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 10_000  # five panels drawn, not an empty canvas


def _cpu_rows(first_percent: float, last_percent: float, seconds: int) -> list[dict[str, Any]]:
    """A load of ``seconds`` whose broker CPU climbs linearly from one value to the other,
    plus a drain after it whose samples must not count as load."""
    step = (last_percent - first_percent) / (seconds - 1)
    rows = [
        {"second": second, "broker_cpu_percent": first_percent + step * second}
        for second in range(seconds)
    ]
    rows += [{"second": seconds + n, "broker_cpu_percent": 400.0} for n in range(30)]
    rows.append({"second": seconds + 30, "broker_cpu_percent": None})
    return rows


def test_a_broker_whose_cpu_grew_at_constant_load_is_reported_saturated() -> None:
    summary = broker_summary(_cpu_rows(20.0, 140.0, 600), duration_s=600)
    assert summary["saturated"]
    assert 20.0 < summary["cpu_percent_first_minute"] < 30.0
    assert 125.0 < summary["cpu_percent_last_minute_of_load"] < 140.0
    assert summary["cpu_percent_max"] == 400.0  # the drain's samples are in the maximum only


def test_a_busy_but_steady_broker_is_not_saturated() -> None:
    steady = broker_summary(_cpu_rows(95.0, 100.0, 300), duration_s=300)
    assert not steady["saturated"]  # busy from the start: the load, not a growing log
    idle = broker_summary(_cpu_rows(5.0, 40.0, 300), duration_s=300)
    assert not idle["saturated"]
    empty = broker_summary([{"second": 0, "broker_cpu_percent": None}], duration_s=10)
    assert empty == {
        "cpu_percent_first_minute": None,
        "cpu_percent_last_minute_of_load": None,
        "cpu_percent_max": None,
        "saturated": False,
    }


def test_the_printed_report_names_a_saturated_broker() -> None:
    report = _report(duration_s=600, rate_eps=2000, lost=0)
    report["broker"] = broker_summary(_cpu_rows(20.0, 140.0, 600), duration_s=600)
    assert "SATURATED" in format_report(report)
    report["broker"] = broker_summary(_cpu_rows(20.0, 40.0, 600), duration_s=600)
    text = format_report(report)
    assert "broker CPU (% of a core): first minute" in text
    assert "SATURATED" not in text


def test_the_printed_report_lists_the_lost_events() -> None:
    report = _report(duration_s=10, rate_eps=10, lost=1)
    report["lost_examples"] = [{"event_id": "e-17", "competition_id": "soak-sum", "value": 3}]
    text = format_report(report)
    assert "lost: {'event_id': 'e-17', 'competition_id': 'soak-sum', 'value': 3}" in text
    assert not report["passed"]


def test_record_counts_carry_over_a_restarted_ranker() -> None:
    counts = RecordCounts()
    counts.observe("ranker-a", {"accepted": 100.0, "rewound": 0.0})
    counts.observe("ranker-b", {"accepted": 40.0})
    counts.observe("ranker-a", {"accepted": 250.0, "rewound": 3.0})
    counts.observe("ranker-a", {"accepted": 20.0, "rewound": 0.0})  # killed and restarted
    assert counts.totals() == {"accepted": 310, "rewound": 3}
    report = _report(duration_s=10, rate_eps=10, lost=0)
    report["ranker_records"] = counts.totals()
    assert "ranker records fetched: accepted 310, rewound 3" in format_report(report)
