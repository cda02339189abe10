"""Redis access: a bounded asyncio client with short timeouts, on one Redis or a Redis Cluster.

Every service gets its client from :func:`create_redis`, typed :data:`RedisClient` (either a
plain :class:`~redis.asyncio.Redis` or, with ``PODIUM_REDIS_CLUSTER=true``, a
:class:`~redis.asyncio.cluster.RedisCluster`). Both speak the same commands; the few places
where they differ (which server answered, where scripts are loaded, idle connections after a
failure) go through the helpers here, so callers never branch on the client's kind and the
single-Redis path keeps exactly its round trips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError

from shared.redis_packing import packed_class
from shared.settings import CommonSettings

RedisClient = Redis | RedisCluster
"""The client every service holds: one Redis, or a Redis Cluster (``PODIUM_REDIS_CLUSTER``)."""

RedisPipeline = Pipeline | ClusterPipeline
"""A pipeline of either client (``client.pipeline(...)``)."""

# A cluster command that fails on a node that went away is retried after the client re-reads
# the topology: a few quick tries (about 1 s in all), so a failover costs the callers one
# retry of their own rather than a request stuck for the client's default ~10 tries.
_CLUSTER_RETRIES = 3
_CLUSTER_RETRY_BASE_S = 0.05
_CLUSTER_RETRY_CAP_S = 0.5


def create_redis(settings: CommonSettings, *, max_connections: int | None = None) -> RedisClient:
    """A client whose pool blocks (briefly) instead of opening unbounded connections.

    A command whose pooled connection turns out closed (Redis restarted or failed over since
    it was opened) is sent once more on a new connection, at once: otherwise every idle
    connection fails one request after a restart (503s, 1013 closes, the query breaker
    opening). Only connection errors are retried, never timeouts (a hung Redis must not cost
    twice the timeout); a retried command can have run on a server that died before
    answering, which Podium's scripts tolerate (absolute writes, a refused stale write is
    rebuilt, versions only need to increase).

    With ``PODIUM_REDIS_CLUSTER=true`` the URL's comma-separated nodes are the cluster's seed
    nodes (see :func:`create_cluster`).
    """
    if settings.redis_cluster:
        return create_cluster(settings, max_connections=max_connections)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=max_connections or settings.redis_pool_max,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    pool.connection_class = packed_class(pool.connection_class)  # the URL's kind, hiredis-packed
    return Redis.from_pool(pool)


def create_cluster(settings: CommonSettings, *, max_connections: int | None = None) -> RedisCluster:
    """A Redis Cluster client seeded with every node ``PODIUM_REDIS_URL`` lists.

    The nodes are ``redis://[user:password@]host:port`` (or ``rediss://`` for TLS) separated
    by commas; credentials and TLS come from the first. The client learns the slot map from
    any seed that answers and follows MOVED/ASK redirections and failovers itself; the pool
    limit applies per node. Every Podium key of a competition carries the ``{cid}`` hash tag
    (:mod:`shared.redis_keys`), so its scripts and transactions stay on one node.
    """
    seeds = [urlsplit(part.strip()) for part in settings.redis_url.get_secret_value().split(",")]
    seeds = [seed for seed in seeds if seed.hostname]
    if not seeds:
        raise ValueError("PODIUM_REDIS_URL names no cluster node (redis://host:port[,...])")
    first = seeds[0]
    options: dict[str, Any] = {}
    if first.scheme == "rediss":
        options["ssl"] = True
    cluster = RedisCluster(
        startup_nodes=[ClusterNode(seed.hostname or "", seed.port or 6379) for seed in seeds],
        username=unquote(first.username) if first.username else None,
        password=unquote(first.password) if first.password else None,
        max_connections=max_connections or settings.redis_pool_max,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        health_check_interval=30,
        retry=Retry(
            ExponentialWithJitterBackoff(base=_CLUSTER_RETRY_BASE_S, cap=_CLUSTER_RETRY_CAP_S),
            _CLUSTER_RETRIES,
        ),
        **options,
    )
    # hiredis packing on every node: the seeds exist already, nodes found later are made from
    # the client's connection kwargs (one dict, shared with its nodes manager)
    connection_class = packed_class(cluster.connection_kwargs["connection_class"])
    cluster.connection_kwargs["connection_class"] = connection_class
    for node in cluster.nodes_manager.startup_nodes.values():
        node.connection_class = connection_class
    return cluster


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


async def ping(client: RedisClient) -> None:
    """Raise unless Redis answers PING (on a cluster: every node the client knows)."""
    await client.ping()


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """Which Redis server processes hold the data, and for how long they have been up.

    ``run_id`` is new for every server process, so a restart (from an older snapshot or
    empty) or a promoted replica shows as a new identity. On a cluster it joins every
    primary's ``run_id`` (sorted), so a failover of any shard changes it; ``uptime_s`` is
    then the youngest primary's.
    """

    run_id: str
    uptime_s: float


async def server_identity(client: RedisClient) -> ServerIdentity:
    """The identity of the server(s) that hold the data: one ``INFO server`` per primary."""
    if isinstance(client, RedisCluster):
        replies: dict[str, dict[str, Any]] = await client.info(
            "server", target_nodes=RedisCluster.PRIMARIES
        )
        servers = list(replies.values())
        return ServerIdentity(
            ",".join(sorted(str(server["run_id"]) for server in servers)),
            min(float(server["uptime_in_seconds"]) for server in servers),
        )
    server = await client.info("server")
    return ServerIdentity(str(server["run_id"]), float(server["uptime_in_seconds"]))


async def ensure_scripts(client: RedisClient, scripts: Sequence[AsyncScript]) -> None:
    """Make sure every primary has ``scripts`` before a pipeline sends them by SHA.

    On one Redis :func:`execute_scripted` loads a missing script when its command is answered
    NOSCRIPT, so this returns at once. A cluster pipeline cannot: a primary
    promoted or restarted since the scripts were loaded would answer NOSCRIPT, so the SHAs
    are checked on every primary (one SCRIPT EXISTS each, in parallel) and loaded where
    missing; a failover between the check and the pipeline fails that attempt, and the
    caller's retry checks again.
    """
    if not isinstance(client, RedisCluster) or not scripts:
        return
    present = await client.script_exists(*(script.sha for script in scripts))
    for script, exists in zip(scripts, present, strict=True):
        if not exists:
            script.sha = await client.script_load(script.script)


def queue_script(
    pipe: RedisPipeline, script: AsyncScript, keys: list[str], arguments: list[str | float | int]
) -> None:
    """Queue ``script`` on ``pipe`` by its SHA; run the pipeline with :func:`execute_scripted`.

    The script is not registered on the pipeline: redis-py would then ask SCRIPT EXISTS before
    every execute, a round trip of its own per batch. redis-py (8.1) blocks ``evalsha`` on a cluster
    pipeline only because it cannot know the script is loaded (redis/redis-py#2914, lifted
    upstream by #4206); it routes EVALSHA by its keys, so the raw command is queued instead.
    """
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *arguments)


async def execute_scripted(
    client: RedisClient, pipe: RedisPipeline, scripts: Sequence[AsyncScript]
) -> list[Any]:
    """Execute ``pipe``, whose ``scripts`` went by SHA (:func:`queue_script`), in one round trip.

    On one Redis the EVALSHAs go out without a SCRIPT EXISTS first. A command answered
    NOSCRIPT (the server restarted, failed over or flushed its scripts since they were
    loaded) did not run: its script is loaded and exactly those commands are sent again, so
    every command runs once, but a re-sent one runs after every command queued behind it
    (queue nothing that reads what an earlier script call of the same pipeline wrote). Any
    other error reply is raised, as ``execute()`` does. A cluster pipeline is executed once
    :func:`ensure_scripts` has the scripts on every primary.
    """
    if not isinstance(pipe, Pipeline):
        await ensure_scripts(client, scripts)
        return await pipe.execute()
    if pipe.is_transaction or pipe.explicit_transaction:  # a re-send would leave the MULTI
        raise ValueError("scripts sent by SHA need a pipeline without MULTI")
    commands = list(pipe.command_stack)
    replies = await pipe.execute(raise_on_error=False)
    missing = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        by_sha = {script.sha: script for script in scripts}
        for sha in {commands[index][0][1] for index in missing}:
            if sha not in by_sha:
                raise ValueError(f"a command ran script {sha!r}, which is not among {scripts!r}")
            await client.script_load(by_sha[sha].script)
        async with client.pipeline(transaction=False) as again:
            for index in missing:
                arguments, options = commands[index]
                again.execute_command(*arguments, **options)
            resent = await again.execute(raise_on_error=False)
        for index, reply in zip(missing, resent, strict=True):
            replies[index] = reply
    for index, reply in enumerate(replies):
        if isinstance(reply, Exception):
            pipe.annotate_exception(reply, index + 1, commands[index][0])
            raise reply
    return replies


async def drop_idle_connections(client: RedisClient) -> None:
    """Close the pooled idle connections after a connection failure (a restarted server).

    Each would fail once more before the pool noticed. A cluster client already drops a
    failed node's idle connections and re-reads the topology on its own.
    """
    if isinstance(client, Redis):
        await client.connection_pool.disconnect(inuse_connections=False)
