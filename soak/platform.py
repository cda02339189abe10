"""The platform as separate processes, each of which the soak can kill and restart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from devstack.broker import start_broker
from devstack.embedded import REDIS_SNAPSHOT_FILE, start_embedded_postgres, start_embedded_redis
from devstack.processes import ManagedProcess, free_port, spawn
from devstack.redis_cluster import RedisClusterServers, pick_node_ports, start_redis_cluster
from services.settings import AllServicesSettings
from shared.db import application_name
from shared.kafka import ensure_topics
from shared.migrations import migrate
from shared.redis_keys import built_key
from shared.settings import settings_environment
from soak.http import HTTP_ERRORS, SoakClient

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 90.0
_KEPT_SNAPSHOT = "older-snapshot.rdb"


@dataclass
class ServiceSpec:
    """How to start one Podium process: its CLI arguments and its own port."""

    name: str
    arguments: list[str]
    port_setting: str
    port: int


@dataclass
class Platform:
    """Broker, Redis and the Podium processes of one soak run.

    Every store is private to the run: PostgreSQL (``embedded-postgres``) so it can be
    SIGKILLed and restarted, Redis so it can be restarted with its data gone or from an older
    snapshot (or, in cluster mode, a 3-master Redis Cluster whose masters can be killed), the
    broker because its log is in memory and so it can be stalled.
    """

    settings: AllServicesSettings
    work_dir: Path
    broker: ManagedProcess | None = None
    redis: ManagedProcess | None = None
    postgres: ManagedProcess | None = None
    redis_port: int = 0
    postgres_port: int = 0
    cluster_ports: list[int] = field(default_factory=list)  # cluster mode: the nodes' ports
    cluster: RedisClusterServers | None = None
    services: dict[str, ServiceSpec] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    _snapshot_saved_at: float | None = None

    @classmethod
    def create(
        cls, base: AllServicesSettings, work_dir: Path, run_id: str, *, redis_cluster: bool = False
    ) -> Platform:
        """Pick free ports and isolate names for one run (on a Redis Cluster when asked)."""
        redis_port = free_port()
        postgres_port = free_port()
        cluster_ports = pick_node_ports() if redis_cluster else []
        redis_url = (
            ",".join(f"redis://127.0.0.1:{port}" for port in cluster_ports)
            if redis_cluster
            else f"redis://127.0.0.1:{redis_port}/0"
        )
        settings = base.model_copy(
            update={
                "env": "test",
                "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                "redis_url": base.redis_url.__class__(redis_url),
                "redis_cluster": redis_cluster,
                "database_url": base.database_url.__class__(
                    f"postgresql://postgres@127.0.0.1:{postgres_port}/postgres"
                ),
                "db_schema": f"soak_{run_id}",
                "redis_key_prefix": f"soak:{run_id}:",
                "ranker_group_id": f"soak-ranker-{run_id}",
                "log_json": True,
                "kafka_partitions": 4,
            }
        )
        platform = cls(
            settings=settings,
            work_dir=work_dir,
            redis_port=redis_port,
            postgres_port=postgres_port,
            cluster_ports=cluster_ports,
        )
        ports = {
            name: free_port() for name in ("ingest-a", "ingest-b", "query", "query-b", "notifier")
        }
        platform.services = {
            "ingest-a": ServiceSpec(
                "ingest-a", ["serve", "ingest"], "ingest_port", ports["ingest-a"]
            ),
            "ingest-b": ServiceSpec(
                "ingest-b", ["serve", "ingest"], "ingest_port", ports["ingest-b"]
            ),
            "query": ServiceSpec("query", ["serve", "query"], "query_port", ports["query"]),
            "query-b": ServiceSpec("query-b", ["serve", "query"], "query_port", ports["query-b"]),
            "notifier": ServiceSpec(
                "notifier", ["serve", "notifier"], "notifier_port", ports["notifier"]
            ),
            "ranker-a": ServiceSpec("ranker-a", ["ranker"], "ranker_port", free_port()),
            "ranker-b": ServiceSpec("ranker-b", ["ranker"], "ranker_port", free_port()),
        }
        return platform

    def url(self, name: str) -> str:
        """Base URL of an HTTP process."""
        return f"http://127.0.0.1:{self.services[name].port}"

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start stores, prepare schema and topics, then every Podium process."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        host, _, port = self.settings.kafka_bootstrap_servers.rpartition(":")
        self.broker = start_broker(host, int(port), log_path=self.work_dir / "broker.log")
        if self.settings.redis_cluster:
            self.cluster = await asyncio.to_thread(
                start_redis_cluster, self._redis_dir, self.work_dir, self.cluster_ports
            )
        else:
            self.start_redis()
        self.start_postgres()
        await migrate(self.settings)
        await ensure_topics(self.settings)
        for name in self.services:
            self.start_process(name)
        await asyncio.gather(*(self.wait_ready(name) for name in self.services))

    async def stop(self) -> None:
        """Stop every process (in parallel: each may take seconds to exit), then the stores,
        and delete the stores' data; off the event loop, which stays responsive."""
        members = [self.processes.pop(name) for name in list(self.processes)]
        await asyncio.gather(*(asyncio.to_thread(member.stop) for member in members))
        await asyncio.to_thread(self._stop_stores)

    def _stop_stores(self) -> None:
        for member in (self.redis, self.broker, self.postgres):
            if member is not None:
                member.stop()
        if self.cluster is not None:
            self.cluster.stop()
        # the stores' data goes with the run (the processes' logs stay for a post-mortem)
        for data_dir in (self._postgres_dir, self._redis_dir):
            shutil.rmtree(data_dir, ignore_errors=True)

    def environment(self, name: str) -> dict[str, str]:
        """The environment of one process: the run's settings plus its own port."""
        spec = self.services[name]
        base = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
        env = {**base, **settings_environment(self.settings)}
        env[f"PODIUM_{spec.port_setting.upper()}"] = str(spec.port)
        return env

    def start_process(self, name: str) -> None:
        """(Re)start one Podium process."""
        spec = self.services[name]
        self.processes[name] = spawn(
            name,
            [sys.executable, "-m", "podium.cli", *spec.arguments],
            env=self.environment(name),
            log_path=self.work_dir / f"{name}.log",
        )

    def kill_process(self, name: str) -> None:
        """SIGKILL one Podium process (no clean shutdown)."""
        member = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(member.process.pid, signal.SIGKILL)
        member.process.wait()

    async def wait_ready(self, name: str, timeout_s: float = READY_TIMEOUT_S) -> float:
        """Poll ``/health/ready`` of a process; returns the seconds it took."""
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.services[name].port}/health/ready"
        async with SoakClient(timeout_s=1.0) as client:
            while time.monotonic() - started < timeout_s:
                member = self.processes.get(name)
                if member is not None and member.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {member.process.returncode}")
                with contextlib.suppress(*HTTP_ERRORS):
                    if (await client.get(url)).status_code == 200:
                        return time.monotonic() - started
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{name} not ready after {timeout_s:.0f} s")

    @property
    def _redis_dir(self) -> Path:
        return self.work_dir / "redis"

    def start_redis(self) -> None:
        """Start the private Redis (empty unless its data dir holds a snapshot to load)."""
        self.redis = start_embedded_redis(
            self._redis_dir,
            "127.0.0.1",
            self.redis_port,
            log_path=self.work_dir / "redis.log",
        )

    async def save_redis_snapshot(self) -> None:
        """``SAVE`` now, and keep that RDB file aside for :meth:`restart_redis_from_snapshot`
        (aside: a plain :meth:`restart_redis` must still start empty)."""
        client = Redis.from_url(self.settings.redis_url.get_secret_value())
        try:
            await client.save()
        finally:
            await client.aclose()
        (self._redis_dir / REDIS_SNAPSHOT_FILE).replace(self._redis_dir / _KEPT_SNAPSHOT)
        self._snapshot_saved_at = time.monotonic()

    def restart_redis(self) -> None:
        """Kill Redis and start a new, empty one on the same port."""
        self._kill_redis()
        self.start_redis()

    def restart_redis_from_snapshot(self) -> float:
        """Kill Redis and start a new one from the kept snapshot, as a crashed Redis comes
        back from its last RDB; returns the snapshot's age in seconds."""
        assert self._snapshot_saved_at is not None, "save_redis_snapshot() first"
        self._kill_redis()
        shutil.copyfile(self._redis_dir / _KEPT_SNAPSHOT, self._redis_dir / REDIS_SNAPSHOT_FILE)
        self.start_redis()
        (self._redis_dir / REDIS_SNAPSHOT_FILE).unlink()  # loaded; the next restart is empty
        return time.monotonic() - self._snapshot_saved_at

    def kill_redis_master(self, competition_id: str) -> str:
        """Cluster mode: SIGKILL the master holding ``competition_id``'s slot, wait until its
        replica is promoted, then start the killed node again (it rejoins as a replica).
        Replication is asynchronous, so the promoted replica may lack the last writes: the
        platform must notice (the failover changes the cluster's identity) and rebuild."""
        assert self.cluster is not None, "kill_redis_master needs the cluster mode"
        master = self.cluster.master_of(built_key(self.settings.redis_key_prefix, competition_id))
        replica = self.cluster.replica_of(master)
        self.cluster.kill(master)
        promoted_s = self.cluster.wait_promoted(replica)
        self.cluster.restart(master)
        return (
            f"SIGKILL Redis Cluster master :{master} ({competition_id}'s slot); replica :{replica}"
            f" promoted after {promoted_s:.1f} s; :{master} restarted as a replica"
        )

    def _kill_redis(self) -> None:
        """SIGKILL Redis (nothing saved on the way down) and drop any RDB file it would load."""
        assert self.redis is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.redis.process.pid, signal.SIGKILL)
        self.redis.process.wait()
        (self._redis_dir / REDIS_SNAPSHOT_FILE).unlink(missing_ok=True)

    @property
    def _postgres_dir(self) -> Path:
        return self.work_dir / "postgres"

    def start_postgres(self) -> None:
        """Start the private PostgreSQL (initdb on the first start; later starts recover from
        its WAL, as a crashed server does)."""
        self.postgres = start_embedded_postgres(
            self._postgres_dir,
            "127.0.0.1",
            self.postgres_port,
            log_path=self.work_dir / "postgres.log",
        )

    def crash_postgres(self) -> None:
        """SIGKILL the postmaster and every backend at once (nothing flushed, no shutdown
        checkpoint), then start it again: crash recovery replays the WAL."""
        assert self.postgres is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.postgres.process.pid, signal.SIGKILL)
        self.postgres.process.wait()
        self.start_postgres()

    def stall_broker(self) -> None:
        """SIGSTOP the broker: connections stay open, nothing is answered."""
        assert self.broker is not None
        os.killpg(self.broker.process.pid, signal.SIGSTOP)

    def resume_broker(self) -> None:
        """SIGCONT the stalled broker."""
        assert self.broker is not None
        os.killpg(self.broker.process.pid, signal.SIGCONT)

    async def terminate_postgres_connections(self) -> int:
        """``pg_terminate_backend`` every connection Podium holds to this run's database."""
        connection = await asyncpg.connect(self.settings.database_url.get_secret_value())
        try:
            terminated = await connection.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1 AND datname = current_database()"
                " AND pid <> pg_backend_pid()",
                application_name(self.settings),
            )
        finally:
            await connection.close()
        return len(terminated)
