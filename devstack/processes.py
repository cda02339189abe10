"""Child processes that die with their parent and stop in order."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask the kernel to SIGTERM this child when its parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_LOWEST_PICKED_PORT = 10_000
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PICK_ATTEMPTS = 200
_handed_out: set[int] = set()


def _ephemeral_start() -> int:
    """The first port the kernel hands to outgoing connections (Linux default 32768)."""
    try:
        return int(_EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now, below the kernel's ephemeral range and not
    handed out before by this process.

    Below the ephemeral range because a port from it (what binding port 0 gives) can become
    the source port of an outgoing connection before the server it was picked for binds it:
    a CI run's soak lost a query replica to "address already in use" while its PostgreSQL
    started. Never twice, because two picks in a row may coincide before either is bound.
    """
    low, high = _LOWEST_PICKED_PORT, _ephemeral_start() - 1
    picker = random.Random()  # noqa: S311 - spreading ports, not security
    for _ in range(_PICK_ATTEMPTS if high > low else 0):
        port = picker.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        picked: int = probe.getsockname()[1]
        _handed_out.add(picked)
        return picked


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, timeout_s: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until ``host:port`` accepts connections; raise if it does not in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s} s")


@dataclass
class ManagedProcess:
    """A child process with a name and a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, wait, then SIGKILL the child and its process group."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0f s; killing it", self.name, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def spawn(
    name: str,
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    """Start ``command`` in its own process group, dying with us, output to ``log_path``
    (or inherited when None)."""
    output = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
    try:
        process = subprocess.Popen(  # noqa: S603 - commands are built by Podium, not users
            list(command),
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            user=user,
            cwd=cwd,
        )
    finally:
        if output is not None:
            output.close()
    return ManagedProcess(name=name, process=process, log_path=log_path)


@dataclass
class ProcessGroup:
    """Processes started in order and stopped in reverse order."""

    members: list[ManagedProcess] = field(default_factory=list)

    def add(self, member: ManagedProcess) -> ManagedProcess:
        """Track ``member`` so :meth:`stop_all` stops it."""
        self.members.append(member)
        return member

    def first_exited(self) -> ManagedProcess | None:
        """A member that has exited, if any."""
        return next((m for m in self.members if m.process.poll() is not None), None)

    def stop_all(self, timeout_s: float = 10.0) -> None:
        """Stop every member, last started first."""
        for member in reversed(self.members):
            member.stop(timeout_s)
        self.members.clear()
