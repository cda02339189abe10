"""Where the machine's CPU went during a phase: each role's share of a core.

Under load every process of the platform, the broker, PostgreSQL, Redis and the load tool
share the two cores; a stage that waits may be waiting for a core, not for its dependency.
The per-phase table of shares (ingest, ranker, query, notifier, broker, PostgreSQL, Redis, k6,
the bench itself, everything else, and the machine's busy and steal time) says which. Roles
are read off each process's command line; a process that started or ended inside the
window counts only for the part seen.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

import psutil

SERVICES = ("ingest", "ranker", "query", "notifier")


def role_of(process: psutil.Process, own_pid: int) -> str:
    """The role a process plays in a bench run, from its name and command line."""
    if process.pid == own_pid:
        return "bench"
    name = process.name()
    if name.startswith("postgres"):
        return "postgresql"
    if name.startswith("redis-server"):
        return "redis"
    if name == "k6":
        return "k6"
    argv = process.cmdline()
    if name.startswith("tansu") or any("tansu" in part for part in argv):
        return "broker"
    if any(part.endswith("podium.cli") for part in argv):
        return next((part for part in argv if part in SERVICES), "other")
    return "other"


@dataclass(frozen=True, slots=True)
class MachineCpu:
    """CPU seconds of every process (by pid, with its role) and of the machine, at one time."""

    at_s: float
    by_pid: dict[int, tuple[str, float]]
    busy_s: float
    steal_s: float

    @classmethod
    def take(cls) -> MachineCpu:
        """Read every process now (one pass over /proc)."""
        own = os.getpid()
        by_pid: dict[int, tuple[str, float]] = {}
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                by_pid[process.pid] = (role_of(process, own), times.user + times.system)
        machine = psutil.cpu_times()
        steal = getattr(machine, "steal", 0.0)
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0) - steal
        return cls(time.monotonic(), by_pid, busy, steal)

    def shares_since(self, earlier: MachineCpu) -> dict[str, float]:
        """Each role's CPU over the window as a share of one core (2.0 = both cores), with
        ``machine_busy`` and ``machine_steal`` (the hypervisor's time taken from this VM)."""
        elapsed_s = max(self.at_s - earlier.at_s, 1e-9)
        used: dict[str, float] = {}
        for pid, (role, cpu_s) in self.by_pid.items():
            before = earlier.by_pid.get(pid)
            start_s = before[1] if before is not None and before[0] == role else 0.0
            used[role] = used.get(role, 0.0) + max(0.0, cpu_s - start_s)
        shares = {role: round(cpu_s / elapsed_s, 3) for role, cpu_s in sorted(used.items())}
        shares["machine_busy"] = round((self.busy_s - earlier.busy_s) / elapsed_s, 3)
        shares["machine_steal"] = round((self.steal_s - earlier.steal_s) / elapsed_s, 3)
        return shares
