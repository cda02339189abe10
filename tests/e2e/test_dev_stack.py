"""`podium dev` (what `make run` runs): all five processes up, ready, and gone after Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from devstack.cleanup import drop_schema
from devstack.processes import free_port
from tests.support.servers import podium_command

SERVICE_PORTS = ("INGEST", "QUERY", "NOTIFIER", "RANKER")


def _environment(
    tmp_path: Path, database_url: str, redis_url: str, unique_id: str
) -> dict[str, str]:
    base = {key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")}
    env = {
        **base,
        "PODIUM_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "PODIUM_DATABASE_URL": database_url,
        "PODIUM_REDIS_URL": redis_url,
        "PODIUM_DB_SCHEMA": f"dev_{unique_id}",
        "PODIUM_REDIS_KEY_PREFIX": f"dev:{unique_id}:",
        "PODIUM_DEV_DATA_DIR": str(tmp_path / "podium-data"),
    }
    for name in SERVICE_PORTS:
        env[f"PODIUM_{name}_PORT"] = str(free_port())
    return env


def _command_lines(processes: list[psutil.Process]) -> list[str]:
    """Command lines of the processes still running (a short-lived child may be a zombie)."""
    lines = []
    for process in processes:
        try:
            lines.append(" ".join(process.cmdline()))
        except (psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
    return lines


def _run_and_stop(env: dict[str, str], log_path: Path) -> str:
    """Start `podium dev`, check every service, Ctrl-C it, check nothing is left; the log."""
    with open(log_path, "wb") as log:
        dev = subprocess.Popen(podium_command("dev"), env=env, stdout=log, stderr=subprocess.STDOUT)
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while "Podium is up" not in log_path.read_text():
            assert dev.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        descendants = psutil.Process(dev.pid).children(recursive=True)
        names = " ".join(_command_lines(descendants))
        for expected in (
            "tansu",
            "serve ingest",
            "serve query",
            "serve notifier",
            "podium.cli ranker",
        ):
            assert expected in names, names
        for name in SERVICE_PORTS:
            base = f"http://127.0.0.1:{env[f'PODIUM_{name}_PORT']}"
            ready = httpx.get(f"{base}/health/ready", timeout=5)
            assert ready.status_code == 200, (name, ready.text)
            metrics = httpx.get(f"{base}/metrics", timeout=5)
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            assert "# TYPE " in metrics.text
    finally:
        dev.send_signal(signal.SIGINT)
        try:
            dev.wait(60)
        except subprocess.TimeoutExpired:
            dev.kill()
            raise
    assert dev.returncode == 0, log_path.read_text()
    _, alive = psutil.wait_procs(descendants, timeout=10)
    assert not alive, [process.cmdline() for process in alive]
    return log_path.read_text()


def test_dev_stack_with_the_configured_stores(
    tmp_path: Path, database_url: str, redis_url: str, unique_id: str
) -> None:
    env = _environment(tmp_path, database_url, redis_url, unique_id)
    try:
        output = _run_and_stop(env, tmp_path / "dev.log")
    finally:
        asyncio.run(drop_schema(database_url, env["PODIUM_DB_SCHEMA"]))
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{env['PODIUM_REDIS_KEY_PREFIX']}*"):
            client.delete(key)
        client.close()
    assert "PostgreSQL: using" in output
    assert "Redis: using" in output
    assert "admin token" in output


@pytest.mark.slow
def test_dev_stack_falls_back_to_embedded_stores(tmp_path: Path, unique_id: str) -> None:
    dead_pg, dead_redis = free_port(), free_port()
    env = _environment(
        tmp_path,
        f"postgresql://postgres@127.0.0.1:{dead_pg}/postgres",
        f"redis://127.0.0.1:{dead_redis}/0",
        unique_id,
    )
    output = _run_and_stop(env, tmp_path / "dev.log")
    assert "did not answer; embedded one at" in output
    assert output.count("did not answer") == 2
