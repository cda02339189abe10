"""What one benchmark run brings up: a private broker, its own schema, key prefix and topics,
and Podium's processes (plus the naive app) on free ports; all of it removed at the end.

PostgreSQL and Redis are the configured ones (the machine's): the run only adds a schema
``bench_<run id>`` and keys under ``bench:<run id>:``, and drops both when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devstack.broker import start_broker
from devstack.cleanup import discard_run_data
from devstack.processes import ManagedProcess, free_port, spawn
from services.settings import AllServicesSettings
from shared.kafka import connection_options, ensure_topics
from shared.migrations import migrate
from shared.settings import settings_environment

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 90.0
NAIVE_KEY_SUFFIX = "naive:leaderboard"
# High enough that 429s never shape a throughput figure; the limiter itself still runs.
UNLIMITED_RATE = 1e9
UNLIMITED_BURST = 1_000_000_000


def raise_open_files_limit() -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def bench_settings(base: AllServicesSettings, run_id: str) -> AllServicesSettings:
    """``base`` isolated for one run: private broker port, schema, prefix, group, open limits."""
    return base.model_copy(
        update={
            "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
            "kafka_partitions": 4,
            "db_schema": f"bench_{run_id}",
            "redis_key_prefix": f"bench:{run_id}:",
            "ranker_group_id": f"bench-ranker-{run_id}",
            "log_level": "WARNING",
            "rate_server_per_s": UNLIMITED_RATE,
            "rate_server_burst": UNLIMITED_BURST,
            # the load comes from one address: read limits open too (#15)
            "query_rate_anonymous_per_s": UNLIMITED_RATE,
            "query_rate_anonymous_burst": UNLIMITED_BURST,
            "ws_connect_rate_anonymous_per_s": UNLIMITED_RATE,
            "ws_connect_anonymous_burst": UNLIMITED_BURST,
            "ws_max_connections": 50_000,
        }
    )


@dataclass
class Service:
    """One running process of the run and the URL it serves."""

    process: ManagedProcess
    url: str


@dataclass
class BenchStack:
    """The run's broker and processes; ``close()`` stops them and drops the run's data."""

    settings: AllServicesSettings
    work_dir: Path
    run_id: str
    broker: ManagedProcess | None = None
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def naive_key(self) -> str:
        """The naive app's sorted set (under the run's prefix, so clean-up finds it)."""
        return f"{self.settings.redis_key_prefix}{NAIVE_KEY_SUFFIX}"

    @property
    def sink_topic(self) -> str:
        """Where the ingest throughput phases publish: a topic no ranker consumes."""
        return f"{self.settings.topic_score_events}.bench-sink"

    @property
    def live_topic(self) -> str:
        """The score topic of the live phases (freshness, notifier): no ranker backlog there,
        whatever the drain phase left behind."""
        return f"{self.settings.topic_score_events}.bench-live"

    async def start(self) -> None:
        """Start the private broker, create the schema and every topic."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        host, _, port = self.settings.kafka_bootstrap_servers.rpartition(":")
        self.broker = start_broker(host, int(port), log_path=self.work_dir / "broker.log")
        await migrate(self.settings)
        await ensure_topics(self.settings)
        admin = AIOKafkaAdminClient(**connection_options(self.settings))
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(topic, self.settings.kafka_partitions, 1)
                    for topic in (self.sink_topic, self.live_topic)
                ]
            )
        finally:
            await admin.close()

    def environment(self, overrides: dict[str, Any]) -> dict[str, str]:
        """A child's environment: the run's settings with ``overrides`` applied."""
        settings = self.settings.model_copy(update=overrides)
        base = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
        return {**base, **settings_environment(settings)}

    async def serve(self, name: str, service: str, **overrides: Any) -> Service:
        """Start ``podium serve <service>`` as ``name`` and wait until it is ready."""
        port = free_port()
        env = self.environment({**overrides, f"{service}_port": port})
        process = spawn(
            name,
            [sys.executable, "-m", "podium.cli", "serve", service],
            env=env,
            log_path=self.work_dir / f"{name}.log",
        )
        member = Service(process, f"http://127.0.0.1:{port}")
        self.services[name] = member
        await wait_ready(member, "/health/ready")
        return member

    async def serve_naive(self) -> Service:
        """Start the naive app under uvicorn (Podium's worker count, no access log)."""
        port = free_port()
        env = {**os.environ, "NAIVE_REDIS_URL": self.settings.redis_url.get_secret_value()}
        env["NAIVE_REDIS_KEY"] = self.naive_key
        process = spawn(
            "naive",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bench.naive_app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(self.settings.http_workers),
                "--no-access-log",
                "--no-server-header",
                "--log-level",
                "warning",
            ],
            env=env,
            log_path=self.work_dir / "naive.log",
        )
        member = Service(process, f"http://127.0.0.1:{port}")
        self.services["naive"] = member
        await wait_ready(member, "/top")
        return member

    def start_ranker(self, name: str = "ranker", **overrides: Any) -> ManagedProcess:
        """Start ``podium ranker`` (it needs no readiness probe: progress shows in offsets)."""
        port = free_port()
        process = spawn(
            name,
            [sys.executable, "-m", "podium.cli", "ranker"],
            env=self.environment({**overrides, "ranker_port": port}),
            log_path=self.work_dir / f"{name}.log",
        )
        self.services[name] = Service(process, f"http://127.0.0.1:{port}")
        return process

    def stop(self, name: str) -> None:
        """Stop one process of the run."""
        member = self.services.pop(name, None)
        if member is not None:
            member.process.stop()

    async def close(self) -> None:
        """Stop every process and the broker; drop the schema and the run's Redis keys."""
        for name in list(self.services):
            self.stop(name)
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        await discard_run_data(self.settings)


async def wait_ready(member: Service, path: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    """Poll ``path`` until it answers 200; raise when the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if member.process.process.poll() is not None:
                raise RuntimeError(
                    f"{member.process.name} exited with {member.process.process.returncode};"
                    f" see {member.process.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(member.url + path)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{member.process.name} not ready after {timeout_s:.0f} s")
