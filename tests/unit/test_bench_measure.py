"""bench.measure: two servers' wrk runs taken in turn, each figure from its own runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import measure
from bench.measure import WrkLoad, wrk_figures_interleaved
from bench.tools import WrkResult


def test_interleaved_loads_alternate_and_keep_their_own_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, float]] = []
    requests_by_url = {"http://a": 1000, "http://b": 3000}

    def fake_wrk(url: str, script: Path, *, connections: int, duration_s: float) -> WrkResult:
        calls.append((url, duration_s))
        requests = requests_by_url[url] + len(calls)  # every run differs a little
        return WrkResult(requests, 1.0, 0, 0, 1.0, 2.0, 3.0)

    monkeypatch.setattr(measure, "run_wrk", fake_wrk)
    loads = [
        WrkLoad("http://a", lambda repeat: f"-- a {repeat}", "a", 8),
        WrkLoad("http://b", lambda repeat: f"-- b {repeat}", "b", 8, events_per_request=10),
    ]
    first, second = wrk_figures_interleaved(
        loads, tmp_path, duration_s=5.0, repeats=3, warmup_s=1.0
    )

    urls = [url for url, _ in calls]
    assert urls == ["http://a", "http://b"] + ["http://a", "http://b"] * 3
    assert [duration for _, duration in calls[:2]] == [1.0, 1.0]  # the warm-ups
    assert [run["req_s"] for run in first["runs"]] == [1003.0, 1005.0, 1007.0]
    assert first["req_s"] == 1005.0
    assert [run["req_s"] for run in second["runs"]] == [3004.0, 3006.0, 3008.0]
    assert second["events_s"] == 30060.0
    assert "events_s" not in first
    assert (tmp_path / "b-2.lua").read_text().startswith("-- b 2")
