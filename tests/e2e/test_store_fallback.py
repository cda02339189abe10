"""`make test` on a machine without PostgreSQL or Redis: the session starts embedded ones.

A small pytest session runs in a subprocess with ``TEST_DATABASE_URL`` and ``TEST_REDIS_URL``
pointing at ports where nothing listens. It must pass on embedded stores, say that it started
them, and leave no process and no data directory behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from devstack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
# two tests that need PostgreSQL (migrations, a pool) and Redis (the leaderboard store)
INNER_TESTS = [
    "tests/integration/test_migrations.py::test_migrate_is_idempotent_and_creates_the_tables",
    "tests/integration/test_leaderboard_store.py::test_write_refuses_until_built_then_ranks",
]
STARTED = re.compile(
    r"podium tests \| (PostgreSQL|Redis): (\S+) did not answer; started an embedded one at"
    r" (\S+) \(pid (\d+), log (\S+)\) for this session"
)
STOPPED = re.compile(r"podium tests \| (PostgreSQL|Redis): stopped the embedded one \(pid (\d+)\)")


def _process_group_members(pgid: int) -> list[str]:
    """Processes still alive in process group ``pgid`` (a server and its children)."""
    members = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(f"{process.pid}: {' '.join(process.cmdline())}")
        except (ProcessLookupError, psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return members


def _data_directories() -> set[Path]:
    """The embedded stores' data directories (tests/support/embedded_stores.py). Only theirs:
    the other lane's read-replica test makes a ``podium-test-replica-*`` one meanwhile."""
    root = Path(tempfile.gettempdir())
    return {*root.glob("podium-test-postgres-*"), *root.glob("podium-test-redis-*")}


def test_a_session_without_stores_runs_on_embedded_ones_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    unanswered_postgres = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    unanswered_redis = f"redis://127.0.0.1:{free_port()}/0"
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PODIUM_")},
        "TEST_DATABASE_URL": unanswered_postgres,
        "TEST_REDIS_URL": unanswered_redis,
    }
    data_directories_before = _data_directories()
    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *INNER_TESTS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = inner.stdout + inner.stderr
    assert inner.returncode == 0, output
    assert "2 passed" in output, output

    started = {match[1]: match for match in STARTED.finditer(output)}
    assert set(started) == {"PostgreSQL", "Redis"}, output
    assert started["PostgreSQL"][2] == unanswered_postgres
    assert started["Redis"][2] == unanswered_redis
    assert started["PostgreSQL"][3].endswith("/test")  # the configured database, created
    stopped = {name: int(pid) for name, pid in STOPPED.findall(output)}
    assert stopped == {name: int(match[4]) for name, match in started.items()}, output

    for name, pid in stopped.items():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie", name
        # the server started its own process group: nothing of it (PostgreSQL's backends,
        # checkpointer, ...) may outlive the session
        assert _process_group_members(pid) == [], name
    assert _data_directories() == data_directories_before  # the servers' data is deleted
