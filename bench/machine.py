"""What the figures were measured on: CPU, memory, Python and package versions."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.k6 import k6_binary

PACKAGES = (
    "aiokafka",
    "faust-streaming",
    "redis",
    "hiredis",
    "asyncpg",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "pydantic",
    "orjson",
    "websockets",
)


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


PYTHON_LOOP_STEPS = 5_000_000


def python_loop_ms(repeats: int = 3) -> float:
    """The best of ``repeats`` timings of a fixed pure-Python loop, in ms: how fast one core of
    this machine runs the interpreter *now*. Machines of the same kind differ (and a shared
    host's neighbours change it): per-event CPU figures of two runs compare only next to
    this."""
    best_s = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        total = 0
        for step in range(PYTHON_LOOP_STEPS):
            total += step
        best_s = min(best_s, time.perf_counter() - started)
    return round(best_s * 1000, 1)


def _k6_version() -> str:
    try:
        return _tool_version([k6_binary(), "version"])
    except RuntimeError:  # not installed: only the phases that drive it need it
        return "missing"


def _tool_version(command: list[str]) -> str:
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (completed.stdout or completed.stderr).strip().splitlines()[0][:120]


def machine_info() -> dict[str, Any]:
    """nproc, CPU model, memory, load, OS, Python, packages and load-tool versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python_loop_ms": python_loop_ms(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "tools": {
            "wrk": _tool_version(["wrk", "--version"]),
            "redis-benchmark": _tool_version(["redis-benchmark", "--version"]),
            "k6": _k6_version(),
        },
        "git_commit": _git_commit(),
    }


def _git_commit() -> str:
    head = Path(__file__).resolve().parent.parent / ".git"
    if not head.exists():
        return "unknown"
    completed = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        cwd=head.parent,
        check=False,
    )
    return completed.stdout.strip() or "unknown"
