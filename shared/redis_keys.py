"""Every Redis key Podium writes, and every SCAN pattern that finds them: the layout lives here.

All keys start with ``PODIUM_REDIS_KEY_PREFIX`` so one Redis can hold several deployments or
test runs. Under it:

- ``lb:{<cid>}:<window>:z`` — a window's ranking, a sorted set (member encoding:
  :mod:`shared.leaderboard`);
- ``lb:{<cid>}:<window>:m`` — a hash ``user_id -> member``, to find a user's member;
- ``lb:{<cid>}:<window>:d`` — the window's *distinct scores*, a sorted set with one member
  per score held by at least one user (dense ranks count it; see
  :mod:`shared.leaderboard_store`);
- ``lb:{<cid>}:built`` — the built marker: the PostgreSQL standings version the competition's
  keys reflect (see :mod:`shared.leaderboard_store`);
- ``lb:{<cid>}:version`` — the counter of change messages published for the competition;
- ``lb:{<cid>}:windows`` — the competition's window index, a set of the windows that have a
  ranking, plus the member ``~`` (:data:`WINDOWS_COMPLETE`): it lists every one (see
  :func:`competition_windows`);
- ``<one of the above>:rebuild:<token>`` — a rebuild's temporary copy, renamed into place;
- ``rl:<policy>:<subject>`` — a rate-limit token bucket (per caller, not per competition).

A competition's keys share the hash tag ``{<cid>}`` so multi-key scripts work on Redis
Cluster. Patterns escape glob characters (``* ? [ ] \\``) in the prefix and the competition id,
so one competition's SCAN never matches another's keys, whatever the ids contain.
"""

from __future__ import annotations

from shared.redis_client import RedisClient

_RANKING_SUFFIX = ":z"
_REBUILD_MARK = ":rebuild:"
_SCAN_COUNT = 1000
WINDOWS_COMPLETE = "~"
"""The window index's member that says it lists every window (no window is named so)."""
_GLOB_SPECIALS = ("\\", "*", "?", "[", "]")  # backslash first: it escapes the others


def glob_escaped(text: str) -> str:
    """``text`` matched literally inside a Redis glob pattern."""
    for special in _GLOB_SPECIALS:
        text = text.replace(special, "\\" + special)
    return text


def _competition_head(prefix: str, competition_id: str) -> str:
    return f"{prefix}lb:{{{competition_id}}}:"


def ranking_key(prefix: str, competition_id: str, window: str) -> str:
    """The sorted set holding a window's ranking."""
    return f"{_competition_head(prefix, competition_id)}{window}{_RANKING_SUFFIX}"


def members_key(prefix: str, competition_id: str, window: str) -> str:
    """The hash mapping user id to sorted-set member in a window."""
    return f"{_competition_head(prefix, competition_id)}{window}:m"


def distinct_key(prefix: str, competition_id: str, window: str) -> str:
    """The sorted set of a window's distinct scores (one member per score in use)."""
    return f"{_competition_head(prefix, competition_id)}{window}:d"


def built_key(prefix: str, competition_id: str) -> str:
    """The built marker: which PostgreSQL standings version the competition's keys reflect."""
    return f"{_competition_head(prefix, competition_id)}built"


def windows_key(prefix: str, competition_id: str) -> str:
    """The competition's window index (see :func:`competition_windows`)."""
    return f"{_competition_head(prefix, competition_id)}windows"


def version_key(prefix: str, competition_id: str) -> str:
    """The counter of change messages published for a competition."""
    return f"{_competition_head(prefix, competition_id)}version"


def rebuild_key(live_key: str, token: str) -> str:
    """A rebuild's temporary copy of ``live_key`` (same hash tag, so RENAME works on Cluster)."""
    return f"{live_key}{_REBUILD_MARK}{token}"


def rate_limit_key(prefix: str, policy: str, subject: str) -> str:
    """The token bucket of ``subject`` (a user, a server or an IP) under ``policy``."""
    return f"{prefix}rl:{policy}:{subject}"


def prefix_pattern(prefix: str) -> str:
    """A SCAN pattern matching every key under ``prefix`` (a whole run's or deployment's)."""
    return f"{glob_escaped(prefix)}*"


def competition_key_pattern(prefix: str, competition_id: str) -> str:
    """A SCAN pattern matching every key of one competition (temporary rebuild keys too)."""
    return f"{glob_escaped(_competition_head(prefix, competition_id))}*"


async def competition_windows(redis: RedisClient, prefix: str, competition_id: str) -> set[str]:
    """The windows of a competition that have a ranking in Redis.

    Read from its window index, which the write script keeps (a written window is added, one
    left empty removed) and a rebuild's swap replaces whole, in the same atomic steps as the
    keys themselves: two reads, whatever else Redis holds. Without an index, a competition
    without a built marker has no windows (the write script writes only into a built board,
    or into a new one's first batch, which creates the index); one with a marker was built
    before the index existed, and its windows are found the old way, by one SCAN of the whole
    keyspace (its cost grows with every key in Redis: 69 ms beside 100,000 keys; the
    competition's next rebuild gives it an index). Temporary rebuild keys are not windows.
    """
    async with redis.pipeline(transaction=False) as pipe:
        pipe.exists(built_key(prefix, competition_id))
        pipe.smembers(windows_key(prefix, competition_id))
        built, indexed = await pipe.execute()
    if indexed:
        members = {key.decode() if isinstance(key, bytes) else key for key in indexed}
        return members - {WINDOWS_COMPLETE}
    if not built:
        return set()
    return await _scanned_windows(redis, prefix, competition_id)


async def _scanned_windows(redis: RedisClient, prefix: str, competition_id: str) -> set[str]:
    """The windows found by SCAN (SCAN may return a key twice; a set absorbs that)."""
    head = _competition_head(prefix, competition_id)
    pattern = f"{glob_escaped(head)}*{_RANKING_SUFFIX}"
    windows: set[str] = set()
    async for key in redis.scan_iter(match=pattern, count=_SCAN_COUNT):
        text = key.decode() if isinstance(key, bytes) else key
        if _REBUILD_MARK not in text:
            windows.add(text[len(head) : -len(_RANKING_SUFFIX)])
    return windows


async def competition_keys(
    redis: RedisClient, prefix: str, competition_id: str
) -> list[bytes | str]:
    """Every key of a competition: its windows, marker, version and rebuild leftovers."""
    pattern = competition_key_pattern(prefix, competition_id)
    return [key async for key in redis.scan_iter(match=pattern, count=_SCAN_COUNT)]
