"""CPU seconds of the processes a phase loads: Podium's own, PostgreSQL's and Redis's.

Throughput on two shared cores is noisy; CPU seconds per event are much less so (a process
that waits on another does not burn CPU), and they say where a cost lands: in the ranker, in
PostgreSQL's backends or in the Redis server. Server processes are found through the servers
themselves (``pg_stat_activity``, Redis ``INFO server``), so this only works when they run on
this machine; otherwise their figures are None.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
import psutil
from redis.asyncio import Redis

from shared.db import application_name
from shared.settings import CommonSettings

# pg_stat_activity.backend_type of the server's own long-lived processes (shared by every
# client of the server, so on a shared machine they also carry other users' work)
POSTGRES_BACKGROUND_TYPES = (
    "walwriter",
    "checkpointer",
    "background writer",
    "autovacuum launcher",
    "logical replication launcher",
)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (all threads), or None when it is gone."""
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return None


@dataclass(frozen=True, slots=True)
class ServerPids:
    """The processes whose CPU a measurement reads, by role."""

    postgres_backends: tuple[int, ...]
    """Backends of the run's own connections (``application_name`` = ``podium/<schema>``)."""
    postgres_background: tuple[int, ...]
    """PostgreSQL's WAL writer, checkpointer, background writer (shared with other users)."""
    redis: int | None
    """The Redis server (all of it: other users' commands count too)."""


async def server_pids(settings: CommonSettings) -> ServerPids:
    """Find the run's PostgreSQL backends, PostgreSQL's background processes and Redis."""
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await connection.fetch(
            "SELECT pid, backend_type, application_name FROM pg_stat_activity"
            " WHERE application_name = $1 OR backend_type = ANY($2::text[])",
            application_name(settings),
            list(POSTGRES_BACKGROUND_TYPES),
        )
    finally:
        await connection.close()
    local = {row["pid"] for row in rows if psutil.pid_exists(row["pid"])}
    backends = tuple(
        sorted(
            row["pid"]
            for row in rows
            if row["pid"] in local and row["application_name"] == application_name(settings)
        )
    )
    background = tuple(
        sorted(row["pid"] for row in rows if row["pid"] in local and row["pid"] not in backends)
    )
    client = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        info = await client.info("server")
    finally:
        await client.aclose()
    redis_pid = int(info.get("process_id", 0)) or None
    if redis_pid is not None and not psutil.pid_exists(redis_pid):
        redis_pid = None  # Redis on another machine (or in a container)
    return ServerPids(backends, background, redis_pid)


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """CPU seconds per pid at one moment."""

    seconds: dict[int, float]

    @classmethod
    def take(cls, pids: Iterable[int]) -> CpuSnapshot:
        """Read every pid that still exists."""
        found = {pid: cpu_seconds(pid) for pid in set(pids)}
        return cls({pid: value for pid, value in found.items() if value is not None})

    def used_since(self, earlier: CpuSnapshot, pids: Iterable[int]) -> float:
        """CPU seconds ``pids`` used between ``earlier`` and this snapshot (a pid missing
        from ``earlier`` started in between and counts from zero)."""
        return sum(
            self.seconds[pid] - earlier.seconds.get(pid, 0.0)
            for pid in set(pids)
            if pid in self.seconds
        )


def us_per_event(cpu_s: float, events: int) -> float | None:
    """Microseconds of CPU per event (None without events)."""
    return round(cpu_s * 1e6 / events, 1) if events > 0 else None
