"""Commands packed by hiredis: the same bytes as redis-py's packer, on every client Podium makes."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from podium.settings import PlatformSettings
from shared.redis_client import create_redis
from shared.redis_packing import HiredisConnection, HiredisUnixConnection
from shared.settings import CommonSettings

COMMANDS: list[tuple[Any, ...]] = [
    ("SET", "k", "v"),
    ("CONFIG GET", "maxmemory"),  # a command name of two words
    (b"CLIENT SETINFO", b"LIB-NAME", b"podium"),
    ("ZADD", "podium:{c1}:z:all", -1234.5, "0000000123456789:user-17"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", 0.1, 1e20, -0.0, 3, 2**62, "é ü", b"\x00\xff"),
    ("SET", "big", "x" * 100_000),  # above redis-py's buffer cut-off
    ("SET", "ba", bytearray(b"raw")),
]


def _python_packed(commands: list[tuple[Any, ...]]) -> bytes:
    return b"".join(Connection().pack_commands(commands))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: str(command[0]))
def test_a_command_packs_to_redis_pys_bytes(command: tuple[Any, ...]) -> None:
    assert b"".join(HiredisConnection().pack_command(*command)) == _python_packed([command])


def test_a_pipeline_packs_to_redis_pys_bytes_in_one_chunk() -> None:
    packed = HiredisConnection().pack_commands(COMMANDS)
    assert len(packed) == 1
    assert packed[0] == _python_packed(COMMANDS)


def test_a_memoryview_keeps_redis_pys_packer() -> None:
    value = memoryview(b"y" * 10)
    command = ("SET", "k", value)
    expected = Connection().pack_command(*command)
    assert HiredisConnection().pack_command(*command) == expected
    assert HiredisConnection().pack_commands([("GET", "k"), command]) == Connection().pack_commands(
        [("GET", "k"), command]
    )


@pytest.mark.parametrize("value", [None, True, {"a": 1}])
def test_a_value_redis_cannot_take_is_a_data_error(value: object) -> None:
    with pytest.raises(DataError):
        HiredisConnection().pack_command("SET", "k", value)
    with pytest.raises(DataError):
        Connection().pack_command("SET", "k", value)  # as redis-py's own packer


def _settings(**overrides: object) -> CommonSettings:
    return CommonSettings(env="dev", **overrides)  # type: ignore[arg-type]


async def test_every_client_kind_packs_with_hiredis() -> None:
    tcp = create_redis(_settings(redis_url="redis://127.0.0.1:6379/0"))
    unix = create_redis(_settings(redis_url="unix:///run/redis.sock"))
    cluster = create_redis(
        _settings(redis_cluster=True, redis_url="redis://127.0.0.1:7000,redis://127.0.0.2:7001")
    )
    try:
        assert isinstance(tcp, Redis)
        assert isinstance(unix, Redis)
        assert tcp.connection_pool.connection_class is HiredisConnection
        assert unix.connection_pool.connection_class is HiredisUnixConnection
        assert issubclass(HiredisUnixConnection, UnixDomainSocketConnection)
        assert isinstance(cluster, RedisCluster)
        nodes = cluster.nodes_manager.startup_nodes.values()
        assert {node.connection_class for node in nodes} == {HiredisConnection}
        assert cluster.nodes_manager.connection_kwargs["connection_class"] is HiredisConnection
    finally:
        for client in (tcp, unix, cluster):
            await client.aclose()


async def test_values_round_trip_through_a_real_redis(settings: PlatformSettings) -> None:
    client = create_redis(settings)
    key = f"{settings.redis_key_prefix}:packing"
    try:
        async with client.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {"a": -1234.5, "b": 0.1, "é": 1e20})
            pipe.zrange(key, 0, -1, withscores=True)
            pipe.eval("return ARGV[1] .. ARGV[2]", 0, 2**62, "ü")
            replies = await pipe.execute()
        assert replies[1] == [(b"a", -1234.5), (b"b", 0.1), ("é".encode(), 1e20)]
        assert replies[2] == f"{2**62}ü".encode()
    finally:
        await client.delete(key)
        await client.aclose()
