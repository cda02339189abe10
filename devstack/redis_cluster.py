"""A private Redis Cluster (tests, ``podium soak --redis-cluster``): 3 masters + 3 replicas of
Debian's ``redis-server``.

Each node runs with ``cluster-enabled yes`` on a free port in its own directory under a tmp
dir (no snapshots, no AOF), ``redis-cli --cluster create ... --cluster-replicas 1`` joins
them, and :func:`start_redis_cluster` waits until every node reports ``cluster_state:ok``.
:func:`redis_cluster` tears the nodes down (SIGTERM, then SIGKILL) afterwards whatever
happened. A node killed with :meth:`RedisClusterServers.kill` can be started again with
:meth:`RedisClusterServers.restart`: its ``nodes.conf`` keeps its identity, so it rejoins as a
replica of whoever took over its slots.

``cluster-node-timeout`` is short (1 s) so a SIGKILLed master fails over in a few seconds,
and ``cluster-replica-validity-factor 0`` lets a replica whose replication link is down take
over anyway: that is how :meth:`RedisClusterServers.hold_back_replica` makes a replica lack
the last writes before its master dies (a real asynchronous-replication loss).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from devstack.processes import ManagedProcess, free_port, spawn, wait_for_port

MASTERS = 3
NODE_TIMEOUT_MS = 1000


def _node_port() -> int:
    """A free port whose cluster bus port (+10000) is free too (so at most 55535)."""
    for _ in range(200):
        port = free_port()
        if port <= 55535 and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _binary(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not Path(path).exists():
        raise RuntimeError(f"{name} not found: apt-get install redis-server (Debian's Redis)")
    return path


@dataclass
class ClusterNodeServer:
    """One node's port, process and directory, and how it was started (for a restart)."""

    port: int
    server: ManagedProcess
    data_dir: Path
    log_path: Path

    def client(self) -> redis.Redis:
        """A plain (non-cluster) client of this node alone."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)


@dataclass
class RedisClusterServers:
    """A running cluster: its nodes and the seed URL for ``PODIUM_REDIS_URL``."""

    nodes: list[ClusterNodeServer]

    @property
    def url(self) -> str:
        """Every node as a seed, comma-separated (``PODIUM_REDIS_CLUSTER=true``)."""
        return ",".join(f"redis://127.0.0.1:{node.port}" for node in self.nodes)

    def node(self, port: int) -> ClusterNodeServer:
        """The node listening on ``port``."""
        return next(node for node in self.nodes if node.port == port)

    def _any_live(self) -> ClusterNodeServer:
        return next(node for node in self.nodes if node.server.process.poll() is None)

    def master_of(self, key: str) -> int:
        """The port of the master that owns ``key``'s slot now."""
        with contextlib.closing(self._any_live().client()) as client:
            slot = int(client.cluster("keyslot", key))
            for start, end, master, *_replicas in client.cluster("slots"):
                if int(start) <= slot <= int(end):
                    return int(master[1])
        raise AssertionError(f"no master owns the slot of {key}")

    def replica_of(self, master_port: int) -> int:
        """The port of ``master_port``'s replica."""
        with contextlib.closing(self.node(master_port).client()) as client:
            info = client.info("replication")
        return int(info["slave0"]["port"])

    def hold_back_replica(self, replica_port: int) -> None:
        """Cut ``replica_port`` off from its master for good: writes from now on never reach it.

        The replica is given a wrong ``masterauth`` (the master has no password, so its
        handshake fails) and its replication link is closed; it keeps its data as of now.
        """
        with contextlib.closing(self.node(replica_port).client()) as client:
            client.config_set("masterauth", "held-back-by-the-test")
            client.client_kill_filter(_type="master")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.closing(self.node(replica_port).client()) as client:
                if client.info("replication").get("master_link_status") == "down":
                    return
            time.sleep(0.05)
        raise AssertionError(f"replica {replica_port} kept its replication link")

    def kill(self, port: int) -> None:
        """SIGKILL a node (nothing saved, no goodbye to the cluster)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.node(port).server.process.pid, signal.SIGKILL)
        self.node(port).server.process.wait()

    def restart(self, port: int) -> None:
        """Start a killed node again on its port and directory (it rejoins the cluster)."""
        node = self.node(port)
        node.server = _spawn_node(port, node.data_dir, node.log_path)
        wait_for_port("127.0.0.1", port, 30, node.server.process)

    def wait_promoted(self, replica_port: int, timeout_s: float = 30) -> float:
        """Wait until ``replica_port`` is a master and the cluster is ok; returns seconds."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            with (
                contextlib.closing(self.node(replica_port).client()) as client,
                contextlib.suppress(redis.RedisError),
            ):
                role = client.info("replication").get("role")
                state = client.cluster("info").get("cluster_state")
                if role == "master" and state == "ok":
                    return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"replica {replica_port} was not promoted within {timeout_s} s")

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.server.stop()


def _wait_cluster_ok(nodes: list[ClusterNodeServer], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(nodes)
    while pending and time.monotonic() < deadline:
        node = pending[0]
        with contextlib.closing(node.client()) as client:
            if client.cluster("info").get("cluster_state") == "ok":
                pending.pop(0)
                continue
        time.sleep(0.1)
    if pending:
        raise AssertionError(f"cluster_state not ok on ports {[n.port for n in pending]}")


def pick_node_ports(count: int = MASTERS * 2) -> list[int]:
    """Free ports for ``count`` nodes (each with its cluster bus port free too)."""
    return [_node_port() for _ in range(count)]


def _spawn_node(port: int, data_dir: Path, log_path: Path) -> ManagedProcess:
    return spawn(
        f"redis-cluster-{port}",
        [_binary("redis-server"), "--bind", "127.0.0.1", "--port", str(port),
         "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
         "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
         "--cluster-replica-validity-factor", "0",
         "--save", "", "--appendonly", "no", "--dir", str(data_dir),
         "--daemonize", "no", "--protected-mode", "no"],
        log_path=log_path,
    )  # fmt: skip


def start_redis_cluster(
    work_dir: Path, log_dir: Path, ports: list[int] | None = None
) -> RedisClusterServers:
    """Start a 3-master, 3-replica cluster on ``ports`` (free ones when not given); every
    node started is stopped again when this fails. The caller stops it (``stop()``)."""
    cli_binary = _binary("redis-cli")
    nodes: list[ClusterNodeServer] = []
    cluster = RedisClusterServers(nodes)
    try:
        for port in ports or pick_node_ports():
            data_dir = work_dir / f"node-{port}"
            data_dir.mkdir(parents=True)
            log_path = log_dir / f"redis-cluster-{port}.log"
            nodes.append(
                ClusterNodeServer(port, _spawn_node(port, data_dir, log_path), data_dir, log_path)
            )
            wait_for_port("127.0.0.1", port, 30, nodes[-1].server.process)
        subprocess.run(  # noqa: S603 - redis-cli from PATH, our own arguments
            [cli_binary, "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in nodes),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        _wait_cluster_ok(nodes, 60)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@contextlib.contextmanager
def redis_cluster(work_dir: Path, log_dir: Path) -> Iterator[RedisClusterServers]:
    """Run a 3-master, 3-replica Redis Cluster for the block; torn down afterwards."""
    cluster = start_redis_cluster(work_dir, log_dir)
    try:
        yield cluster
    finally:
        cluster.stop()
