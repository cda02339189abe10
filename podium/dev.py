"""``podium dev``: the whole platform on one machine, in the foreground.

Starts the broker, uses PostgreSQL and Redis at the configured URLs when they answer (else
embedded ones), applies migrations, creates topics, then runs ingest, query, notifier and the
ranker as child processes. SIGINT/SIGTERM stop everything, services first, then the stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import asyncpg
import redis

from devstack.broker import start_broker
from devstack.embedded import start_embedded_postgres, start_embedded_redis
from devstack.processes import ProcessGroup, free_port, port_open, spawn
from podium.settings import HTTP_SERVICES, PlatformSettings, load_settings_or_exit
from shared.auth import Scope, issue_token
from shared.kafka import ensure_topics
from shared.migrations import migrate


def _say(message: str) -> None:
    print(f"podium dev | {message}", flush=True)


async def _postgres_answers(dsn: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def _wait_ready(name: str, url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310 - our own URL
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{name} is not ready at {url} after {timeout_s:.0f} s")


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def run_dev(*, attach_logs: bool = False) -> int:
    """Run the platform until interrupted; returns the process exit status."""
    settings = load_settings_or_exit(PlatformSettings, env="dev")
    data_dir = Path(settings.dev_data_dir).resolve()
    log_dir = data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    group = ProcessGroup()
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        child_env = _start_stores(settings, data_dir, log_dir, group)
        settings = load_settings_or_exit(
            PlatformSettings,
            env="dev",
            database_url=child_env["PODIUM_DATABASE_URL"],
            redis_url=child_env["PODIUM_REDIS_URL"],
        )
        asyncio.run(migrate(settings))
        _say(f"migrations applied to schema {settings.db_schema!r}")
        asyncio.run(ensure_topics(settings))
        _start_services(settings, child_env, log_dir, group, attach_logs)
        _print_banner(settings, log_dir)
        while True:
            exited = group.first_exited()
            if exited is not None:
                _say(f"{exited.name} exited with status {exited.process.returncode}; stopping")
                return 1
            time.sleep(0.5)
    except _Stop:
        _say("stopping")
        return 0
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        group.stop_all()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _say("stopped")


def _start_stores(
    settings: PlatformSettings, data_dir: Path, log_dir: Path, group: ProcessGroup
) -> dict[str, str]:
    env = {**os.environ, "PODIUM_ENV": "dev"}

    first_server = settings.kafka_bootstrap_servers.split(",")[0]
    kafka_host, _, kafka_port = first_server.rpartition(":")
    if port_open(kafka_host, int(kafka_port)):
        _say(f"Kafka: using the broker already at {first_server}")
    else:
        group.add(start_broker(kafka_host, int(kafka_port), log_path=log_dir / "broker.log"))
        _say(f"Kafka: started tansu (memory storage) at {first_server}")

    database_url = settings.database_url.get_secret_value()
    if asyncio.run(_postgres_answers(database_url)):
        _say(f"PostgreSQL: using {_redact(database_url)}")
    else:
        port = free_port()
        group.add(
            start_embedded_postgres(
                data_dir / "postgres", "127.0.0.1", port, log_path=log_dir / "postgres.log"
            )
        )
        database_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        configured = _redact(settings.database_url.get_secret_value())
        _say(f"PostgreSQL: {configured} did not answer; embedded one at {database_url}")
    env["PODIUM_DATABASE_URL"] = database_url

    redis_url = settings.redis_url.get_secret_value()
    if _redis_answers(redis_url):
        _say(f"Redis: using {_redact(redis_url)}")
    else:
        port = free_port()
        group.add(
            start_embedded_redis(
                data_dir / "redis", "127.0.0.1", port, log_path=log_dir / "redis.log"
            )
        )
        redis_url = f"redis://127.0.0.1:{port}/0"
        configured = _redact(settings.redis_url.get_secret_value())
        _say(f"Redis: {configured} did not answer; embedded one at {redis_url}")
    env["PODIUM_REDIS_URL"] = redis_url
    return env


def _start_services(
    settings: PlatformSettings,
    env: dict[str, str],
    log_dir: Path,
    group: ProcessGroup,
    attach_logs: bool,
) -> None:
    commands = {name: ["serve", name] for name in HTTP_SERVICES} | {"ranker": ["ranker"]}
    ports = {
        "ingest": settings.ingest_port,
        "query": settings.query_port,
        "notifier": settings.notifier_port,
        "ranker": settings.ranker_port,
    }
    busy = [f"{name} :{port}" for name, port in ports.items() if port_open(settings.host, port)]
    if busy:  # another process would answer our readiness checks: refuse instead
        raise SystemExit(
            f"podium dev: port(s) already in use: {', '.join(busy)}; stop what listens there"
            " or set PODIUM_<SERVICE>_PORT"
        )
    for name, arguments in commands.items():
        log_path = None if attach_logs else log_dir / f"{name}.log"
        group.add(
            spawn(
                name, [sys.executable, "-m", "podium.cli", *arguments], env=env, log_path=log_path
            )
        )
    for name, port in ports.items():
        _wait_ready(name, f"http://{settings.host}:{port}/health/ready", 90)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def _print_banner(settings: PlatformSettings, log_dir: Path) -> None:
    base = f"http://{settings.host}"
    token = issue_token(settings, "dev-admin", [Scope.ADMIN.value], ttl_s=7 * 24 * 3600)
    lines = [
        "Podium is up:",
        f"  ingest    {base}:{settings.ingest_port}   (POST /api/v1/scores)",
        f"  query     {base}:{settings.query_port}   (GET /api/v1/leaderboards/<id>/top)",
        f"  notifier  {base}:{settings.notifier_port}   (live page /leaderboards/<id>)",
        f"  ranker    {base}:{settings.ranker_port}   (health and metrics)",
        f"  logs      {log_dir}",
        "  admin token (dev only, 7 days):",
        f"    {token}",
        "Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)
