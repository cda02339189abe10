"""Repeated measurements reduced to medians, and percentiles of latency samples."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
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
    """Median requests/s (2xx only) and p50/p99 over ``repeats`` wrk runs after a warm-up.

    ``script_for(repeat)`` builds each run's Lua (repeat -1 is the warm-up) so event ids stay
    unique across runs. With the server's ``pid``, also its median CPU per request (and per
    event) over the runs: on shared cores far less noisy than requests/s.
    """
    if warmup_s > 0:
        script = write_wrk_script(work_dir / f"{name}-warmup.lua", script_for(-1))
        run_wrk(url, script, connections=connections, duration_s=warmup_s)
    runs: list[WrkResult] = []
    cpu_us: list[float] = []
    for repeat in range(repeats):
        script = write_wrk_script(work_dir / f"{name}-{repeat}.lua", script_for(repeat))
        before = cpu_seconds(pid) if pid is not None else None
        runs.append(run_wrk(url, script, connections=connections, duration_s=duration_s))
        after = cpu_seconds(pid) if pid is not None else None
        if before is not None and after is not None and runs[-1].requests:
            cpu_us.append((after - before) * 1e6 / runs[-1].requests)
    figure: dict[str, Any] = {
        "req_s": round(statistics.median(run.ok_requests_per_s for run in runs), 1),
        "p50_ms": round(statistics.median(run.p50_ms for run in runs), 2),
        "p99_ms": round(statistics.median(run.p99_ms for run in runs), 2),
        "non_2xx": sum(run.status_errors for run in runs),
        "socket_errors": sum(run.socket_errors for run in runs),
        "connections": connections,
        "runs": [
            {"req_s": round(run.ok_requests_per_s, 1), "p50_ms": run.p50_ms, "p99_ms": run.p99_ms}
            for run in runs
        ],
    }
    if events_per_request > 1:
        figure["events_s"] = round(figure["req_s"] * events_per_request, 1)
    if cpu_us:
        figure["cpu_us_per_request"] = round(statistics.median(cpu_us), 1)
        figure["cpu_us_per_event"] = round(statistics.median(cpu_us) / events_per_request, 2)
    return figure
