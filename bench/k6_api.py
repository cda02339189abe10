"""A k6 run driven live through its REST API, every sample kept (the notifier phase's clients).

:class:`bench.k6.K6Run` runs a script to its end and reads its summary. The WebSocket phase
needs more: to know *while k6 runs* that every client has subscribed (so the probes start
then), to end the run when the probes are done, and every per-client receive time rather
than aggregates. So this starts k6 with its REST API on a free port (live metrics, stop) and
``--out json`` (every sample, read after the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

from bench.k6 import k6_binary, k6_environment
from devstack.processes import ManagedProcess, free_port, spawn

logger = logging.getLogger(__name__)

# k6 exits with 103 when the test was stopped through the REST API: that is how we end it
EXIT_STOPPED_FROM_API = 103
_STOP_TIMEOUT_S = 60.0
_API_READY_TIMEOUT_S = 30.0
_POLL_INTERVAL_S = 0.1


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric sample of a k6 run: its value and tags."""

    value: float
    tags: dict[str, str]


class LiveK6Run:
    """One running k6 test: live metrics and stop through its API, samples from its file."""

    def __init__(
        self, name: str, process: ManagedProcess, api_url: str, samples_path: Path
    ) -> None:
        self.name = name
        self.process = process
        self._samples_path = samples_path
        self._http = httpx.AsyncClient(base_url=api_url, timeout=5.0)

    @classmethod
    def launch(
        cls,
        name: str,
        script: Path,
        env: dict[str, str],
        work_dir: Path,
        memory_limit_mib: int,
    ) -> LiveK6Run:
        """Start ``k6 run script`` with ``env`` (as ``__ENV``); await :meth:`wait_for_api`."""
        work_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        samples_path = work_dir / f"{name}.samples.jsonl"
        samples_path.unlink(missing_ok=True)
        command = [
            k6_binary(),
            "run",
            "--address",
            f"127.0.0.1:{port}",
            "--no-usage-report",
            "--no-color",
            "--quiet",
            "--out",
            f"json={samples_path}",
            str(script),
        ]
        process = spawn(
            name,
            command,
            env=k6_environment(env, memory_limit_mib),
            log_path=work_dir / f"{name}.log",
        )
        return cls(name, process, f"http://127.0.0.1:{port}", samples_path)

    async def wait_for_api(self) -> None:
        """Return once the run's REST API answers (k6 has parsed the script)."""
        deadline = time.monotonic() + _API_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            self._raise_if_exited()
            with contextlib.suppress(httpx.HTTPError):
                if (await self._http.get("/v1/status")).status_code == 200:
                    return
            await asyncio.sleep(_POLL_INTERVAL_S)
        raise TimeoutError(f"k6 ({self.name}) API not up after {_API_READY_TIMEOUT_S:.0f} s")

    def _raise_if_exited(self) -> None:
        code = self.process.process.poll()
        if code is not None:
            raise RuntimeError(f"k6 ({self.name}) exited with {code}; see {self.process.log_path}")

    async def metric(self, name: str) -> dict[str, float]:
        """The live aggregate of metric ``name`` (counter: count/rate; trend: min/max/...);
        empty until the script emitted a first sample."""
        self._raise_if_exited()
        response = await self._http.get(f"/v1/metrics/{name}")
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        sample: dict[str, float] = response.json()["data"]["attributes"]["sample"]
        return sample

    async def count(self, name: str) -> int:
        """The live count of counter ``name`` (0 before its first sample)."""
        return int((await self.metric(name)).get("count", 0))

    def cpu_s(self) -> float:
        """CPU seconds k6 has used so far (user + system), to report the client's own load."""
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(self.process.process.pid).cpu_times()
            return float(times.user + times.system)
        return 0.0

    async def stop(self) -> None:
        """Stop the test through the API and wait for k6 to write its samples and exit."""
        if self.process.process.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                await self._http.patch(
                    "/v1/status",
                    json={
                        "data": {"type": "status", "id": "default", "attributes": {"stopped": True}}
                    },
                )
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.process.process.wait, _STOP_TIMEOUT_S)
        killed = self.process.process.poll() is None
        self.process.stop()
        await self._http.aclose()
        code = self.process.process.returncode
        if killed:
            # on a loaded machine closing 10,000 sockets and flushing can outlast the wait:
            # the samples written so far are still read (a cut last line is skipped)
            logger.warning("k6 (%s) did not exit after its stop; killed (exit %s)", self.name, code)
        elif code not in (0, EXIT_STOPPED_FROM_API):
            raise RuntimeError(f"k6 ({self.name}) exited with {code}; see {self.process.log_path}")

    def samples(self, metric: str) -> Iterator[Sample]:
        """Every sample of ``metric`` the run wrote (read after :meth:`stop`)."""
        needle = f'"metric":"{metric}","type":"Point"'.encode()
        with self._samples_path.open("rb") as lines:
            for line in lines:
                if needle in line:
                    try:
                        point: dict[str, Any] = orjson.loads(line)["data"]
                    except orjson.JSONDecodeError:
                        continue  # the line a killed k6 left unfinished
                    yield Sample(float(point["value"]), point.get("tags") or {})
