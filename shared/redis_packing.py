"""Redis commands packed into the wire protocol by hiredis (C) instead of redis-py's Python.

redis-py's synchronous connections pack commands with ``hiredis.pack_command`` when hiredis
is installed; its asyncio connections never do (redis/redis-py#4176, open with PR #4191 as of
redis-py 8.1) and spend ~20 µs of Python per command on this machine's class (4.7 µs with
hiredis; a ranker batch sends two script calls per touched competition). The connection
classes here swap only the packing in: same bytes on the wire (hiredis and redis-py format
str, bytes, int and float alike; tests/unit/test_redis_packing.py compares them), same errors
(a value Redis cannot take raises :class:`redis.exceptions.DataError`). A command holding a
memoryview (redis-py sends those without copying) keeps redis-py's packer.

Drop this module once redis-py's asyncio connections pack with hiredis themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import DataError

_EMPTY = b""

C = TypeVar("C", bound=AbstractConnection)


def pack_command(args: tuple[Any, ...]) -> bytes:
    """One command in the wire protocol; a first argument with spaces (``"CONFIG GET"``)
    is split into its words, as redis-py does."""
    head = args[0]
    if isinstance(head, str):
        args = (*head.encode().split(), *args[1:])
    elif b" " in head:
        args = (*head.split(), *args[1:])
    if any(isinstance(arg, bytearray) for arg in args):
        args = tuple(bytes(arg) if isinstance(arg, bytearray) else arg for arg in args)
    try:
        return hiredis.pack_command(args)  # type: ignore[no-any-return]  # untyped C extension
    except TypeError as error:  # None, a bool, a dict...: redis-py's encoder says DataError
        raise DataError(f"invalid argument in {args[0]!r}: {error}") from error


class HiredisPacking(AbstractConnection):
    """The packing half of a connection class (mixed in before redis-py's own class)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        """``args`` as one wire-protocol chunk (redis-py's packer for memoryviews)."""
        if any(isinstance(arg, memoryview) for arg in args):
            return super().pack_command(*args)
        return [pack_command(args)]

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        """A pipeline's commands as one chunk (redis-py's packer if any holds a memoryview)."""
        listed = [tuple(command) for command in commands]  # read twice for a memoryview
        packed = []
        for args in listed:
            if any(isinstance(arg, memoryview) for arg in args):
                return super().pack_commands(listed)
            packed.append(pack_command(args))
        return [_EMPTY.join(packed)]


class HiredisConnection(HiredisPacking, Connection):
    """A TCP connection packing with hiredis."""


class HiredisSSLConnection(HiredisPacking, SSLConnection):
    """A TLS connection packing with hiredis."""


class HiredisUnixConnection(HiredisPacking, UnixDomainSocketConnection):
    """A Unix-socket connection packing with hiredis."""


PACKED_CLASS_OF: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: HiredisConnection,
    SSLConnection: HiredisSSLConnection,
    UnixDomainSocketConnection: HiredisUnixConnection,
}
"""redis-py's connection classes and their hiredis-packing counterparts."""


def packed_class(connection_class: type[C]) -> type[C]:
    """The hiredis-packing counterpart (a subclass) of ``connection_class``; itself if it
    has none (a class of the caller's own)."""
    return cast(type[C], PACKED_CLASS_OF.get(connection_class, connection_class))
