"""External load tools: ``wrk`` for HTTP and ``redis-benchmark`` for the Redis ceiling.

Both are driven as subprocesses; their output is parsed into plain dictionaries of figures.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_REPORT_MARKER = "PODIUM_WRK_JSON "

# Appended to every wrk script: one JSON line with the figures we need (latency in µs).
_WRK_DONE = """
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    "%s", summary.requests, summary.duration, summary.errors.status, errors,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


class ToolMissingError(RuntimeError):
    """A load tool is not installed; the message says how to install it."""


def require_tool(name: str, package: str) -> str:
    """The path of ``name``; raise with the install command when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} is not installed: run `apt-get install -y {package}`")
    return path


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles and how many answers were not 2xx/3xx."""

    requests: int
    duration_s: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def requests_per_s(self) -> float:
        """Requests completed per second (all statuses)."""
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def ok_requests_per_s(self) -> float:
        """Requests answered 2xx/3xx per second."""
        ok = max(self.requests - self.status_errors, 0)
        return ok / self.duration_s if self.duration_s else 0.0


def write_wrk_script(path: Path, body: str) -> Path:
    """Write a wrk Lua script: ``body`` plus the JSON ``done`` reporter."""
    path.write_text(body + _WRK_DONE.replace('"%s", summary', f'"{WRK_REPORT_MARKER}", summary'))
    return path


def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    duration_s: float,
    threads: int = 2,
    timeout_s: float = 10.0,
) -> WrkResult:
    """Run wrk against ``url`` with ``script`` and parse its JSON line."""
    wrk = require_tool("wrk", "wrk")
    command = [
        wrk,
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "-s",
        str(script),
        url,
    ]
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(WRK_REPORT_MARKER):
            figures = json.loads(line.removeprefix(WRK_REPORT_MARKER))
            return WrkResult(
                requests=figures["requests"],
                duration_s=figures["duration_us"] / 1e6,
                status_errors=figures["status_errors"],
                socket_errors=figures["socket_errors"],
                p50_ms=figures["p50_us"] / 1000,
                p99_ms=figures["p99_us"] / 1000,
                max_ms=figures["max_us"] / 1000,
            )
    raise RuntimeError(
        f"wrk printed no report (exit {completed.returncode}): "
        f"{completed.stdout[-500:]} {completed.stderr[-500:]}"
    )


def run_redis_benchmark(
    host: str, port: int, command: list[str], *, requests: int, pipeline: int, db: int = 0
) -> float:
    """Requests/s of one pipelined ``redis-benchmark`` command (``__rand_int__`` randomised)."""
    tool = require_tool("redis-benchmark", "redis-tools")
    completed = subprocess.run(
        [
            tool,
            "-h",
            host,
            "-p",
            str(port),
            "--dbnum",
            str(db),
            "-n",
            str(requests),
            "-P",
            str(pipeline),
            "-c",
            "50",
            "-r",
            "100000",
            "--csv",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = list(csv.reader(io.StringIO(completed.stdout)))
    for row in rows[1:]:
        if len(row) >= 2 and re.fullmatch(r"[0-9.]+", row[1]):
            return float(row[1])
    raise RuntimeError(
        f"redis-benchmark printed no figure (exit {completed.returncode}): "
        f"{completed.stdout[-300:]} {completed.stderr[-300:]}"
    )
