"""Repeated measurements reduced to medians, and percentiles of latency samples."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.server_cpu import cpu_seconds
from bench.tools import WrkResult, run_wrk, write_wrk_script


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of ``samples``; 0 for none."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50/p99/max and the sample count of latencies in milliseconds."""
    return {
        "p50_ms": round(percentile(samples_ms, 0.50), 2),
        "p99_ms": round(percentile(samples_ms, 0.99), 2),
        "max_ms": round(max(samples_ms, default=0.0), 2),
        "samples": len(samples_ms),
    }


async def timed_calls(samples: int, call: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    """p50 and p99 (ms, 3 decimals: the micro benches time sub-millisecond calls) of
    ``samples`` calls of ``call`` awaited one after another."""
    durations_ms: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        await call()
        durations_ms.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(durations_ms, 0.50), 3),
        "p99_ms": round(percentile(durations_ms, 0.99), 3),
    }


@dataclass(frozen=True)
class WrkLoad:
    """One server endpoint under wrk: what to request and whose CPU to charge it to.

    ``script_for(repeat)`` builds each run's Lua (repeat -1 is the warm-up) so event ids stay
    unique across runs; with the server's ``pid`` the figure has its CPU per request too.
    """

    url: str
    script_for: Callable[[int], str]
    name: str
    connections: int
    events_per_request: int = 1
    pid: int | None = None


@dataclass
class _Runs:
    load: WrkLoad
    results: list[WrkResult] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)


def wrk_figure(
    url: str,
    script_for: Callable[[int], str],
    work_dir: Path,
    name: str,
    *,
    connections: int,
    duration_s: float,
    repeats: int,
    warmup_s: float,
    events_per_request: int = 1,
    pid: int | None = None,
) -> dict[str, Any]:
    """Median requests/s (2xx only) and p50/p99 over ``repeats`` wrk runs after a warm-up
    (with the server's ``pid``: its median CPU per request and per event over the runs, on
    shared cores far less noisy than requests/s)."""
    load = WrkLoad(url, script_for, name, connections, events_per_request, pid)
    return wrk_figures_interleaved(
        [load], work_dir, duration_s=duration_s, repeats=repeats, warmup_s=warmup_s
    )[0]


def wrk_figures_interleaved(
    loads: Sequence[WrkLoad],
    work_dir: Path,
    *,
    duration_s: float,
    repeats: int,
    warmup_s: float,
) -> list[dict[str, Any]]:
    """One :func:`wrk_figure` per load, their runs taken in turn (A, B, A, B, ...).

    A ratio of two figures is only as good as the moments they were measured in: on a shared
    machine a busy spell during one server's runs and not the other's moved the ingest/naive
    ratio by ±0.2. Alternating the runs puts both servers through the same spells.
    """
    runs = [_Runs(load) for load in loads]
    if warmup_s > 0:
        for load in loads:
            script = write_wrk_script(work_dir / f"{load.name}-warmup.lua", load.script_for(-1))
            run_wrk(load.url, script, connections=load.connections, duration_s=warmup_s)
    for repeat in range(repeats):
        for each in runs:
            _run_once(each, work_dir, repeat, duration_s)
    return [_figure(each) for each in runs]


def _run_once(runs: _Runs, work_dir: Path, repeat: int, duration_s: float) -> None:
    load = runs.load
    script = write_wrk_script(work_dir / f"{load.name}-{repeat}.lua", load.script_for(repeat))
    before = cpu_seconds(load.pid) if load.pid is not None else None
    result = run_wrk(load.url, script, connections=load.connections, duration_s=duration_s)
    after = cpu_seconds(load.pid) if load.pid is not None else None
    runs.results.append(result)
    if before is not None and after is not None and result.requests:
        runs.cpu_us.append((after - before) * 1e6 / result.requests)


def _figure(runs: _Runs) -> dict[str, Any]:
    load, results, cpu_us = runs.load, runs.results, runs.cpu_us
    figure: dict[str, Any] = {
        "req_s": round(statistics.median(run.ok_requests_per_s for run in results), 1),
        "p50_ms": round(statistics.median(run.p50_ms for run in results), 2),
        "p99_ms": round(statistics.median(run.p99_ms for run in results), 2),
        "non_2xx": sum(run.status_errors for run in results),
        "socket_errors": sum(run.socket_errors for run in results),
        "connections": load.connections,
        "runs": [
            {"req_s": round(run.ok_requests_per_s, 1), "p50_ms": run.p50_ms, "p99_ms": run.p99_ms}
            for run in results
        ],
    }
    if len(cpu_us) == len(results):
        for run, cpu in zip(figure["runs"], cpu_us, strict=True):
            run["cpu_us_per_request"] = round(cpu, 1)
    if load.events_per_request > 1:
        figure["events_s"] = round(figure["req_s"] * load.events_per_request, 1)
    if cpu_us:
        figure["cpu_us_per_request"] = round(statistics.median(cpu_us), 1)
        figure["cpu_us_per_event"] = round(statistics.median(cpu_us) / load.events_per_request, 2)
    return figure
