"""Leaderboards in Redis: the ranker's write path, the readers' lookups, and rebuilds.

Key layout is in :mod:`shared.redis_keys`, rank encoding in :mod:`shared.leaderboard`. Besides
the per-window keys, each competition has a marker key (:func:`~shared.redis_keys.built_key`)
holding the PostgreSQL *standings version* Redis reflects: the count of standing-changing
batches applied to the competition (table ``standings_versions``, bumped by the ranker in each
batch's transaction).

- A missing marker means Redis lost (or never had) the competition: writes refuse to apply on
  top of a partial index (the caller rebuilds instead, which includes its batch because
  PostgreSQL was written first) and readers rebuild before answering.
- A marker that differs from the version the batch started from means Redis lost *part* of
  its writes (restarted from an older RDB/AOF, a promoted replica that missed the last
  writes) or holds writes PostgreSQL rolled back: the write script refuses too, and the
  caller rebuilds. Equality is strict on purpose: a marker ahead of PostgreSQL is no more
  trustworthy than one behind. Competitions nobody writes to are found by the ranker's
  reconciler, which compares every marker with PostgreSQL.

Both checks are per competition, with single-key or same-slot commands only, so they work on
Redis Cluster too, where one node may lose (or roll back) its slots alone.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from string import Template
from typing import TYPE_CHECKING

import asyncpg
from redis.commands.core import AsyncScript
from redis.exceptions import WatchError

from shared.leaderboard import (
    USER_ID_START,
    encode_member,
    member_user_id,
    redis_score,
    standing_value,
)
from shared.rank_styles import percentile, rank_of, restyled
from shared.redis_client import RedisClient, RedisPipeline, queue_script
from shared.redis_keys import (
    WINDOWS_COMPLETE,
    built_key,
    competition_keys,
    competition_windows,
    distinct_key,
    members_key,
    ranking_key,
    rebuild_key,
    version_key,
    windows_key,
)
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import RankStyle, SortOrder
from shared.teams import competition_of

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    DbConnection = asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]

logger = logging.getLogger(__name__)

REBUILD_CHUNK = 5000
MARKER_CHUNK = 1000
_REBUILD_ATTEMPTS = 5
_NOT_BUILT = -1
_OTHER_VERSION = -2

STANDINGS_VERSION_SQL = "SELECT version FROM standings_versions WHERE competition_id = $1"

# The change-message version counter (shared.redis_keys.version_key) of a competition: the
# next version is max(counter + 1, now in ms). A counter that is gone, or that came back older
# from an RDB/AOF snapshot, restarts from the clock, which is above every version handed out
# before as long as a competition averages under one batch per millisecond (versions then
# follow the clock). The counter is never lowered, so versions are unique and increasing (the
# notifier drops versions it has seen). SET of the argument and INCR keep the arithmetic in
# Redis integers, not Lua numbers. Used by the write script and, alone, by
# services.ranker.index.NEXT_VERSION_SCRIPT.
CHANGE_VERSION_LUA = """
local function next_change_version(key, now_text)
  local now_ms = tonumber(now_text)
  if (tonumber(redis.call('GET', key)) or 0) < now_ms then
    redis.call('SET', key, now_text)
    return now_ms
  end
  return redis.call('INCR', key)
end
"""

# KEYS: built marker, window index, then per window its sorted set, members hash and
# distinct-scores set, then (when ARGV[4] is not empty) the change-message version counter.
# ARGV: the standings version Redis must hold (PostgreSQL's before this batch), the version
# to set (PostgreSQL's after it), top N (0: no tops), now in milliseconds for the next change
# version ('' : take none), then per window one string of operations, each ending in "\n":
#   "s <member> <score>\n"  (set the standing of the member's user)
#   "d <user>\n"            (remove the user)
# then the windows' names, in the same order.
# (one string per window keeps the argument count, and so the client's encoding cost, low;
# identifiers never contain spaces or newlines).
# With a version asked for, the reply is {write reply, next change version} (the version is
# taken whether or not the write applies: a refused write's rebuild is announced with it);
# the write reply is -1 when the marker is missing and {-2, marker} when it holds another
# version (nothing
# written either way); a missing marker is no refusal when the expected version is 0 (the
# competition's first batch: PostgreSQL held nothing of it, so nothing can have been lost —
# without this, every new competition's first batch was refused and rebuilt, a keyspace SCAN
# each, which grew quadratic with 100,000 competitions), else per window: the size after the
# change, 1 if the top N (user and score per rank) changed else 0, the number of top entries
# after, the entries as member, score, then for each operation the user's 0-based rank (-1 if
# absent); the marker then
# holds the new version. A first element of -2 cannot be a reply's size.
# The distinct-scores set (issue #15) holds one member per score at least one user holds: its
# sorted-set score is that score and its member the score's text as Python's repr writes it
# (the shortest exact form, the same in writes and rebuilds, so a second ZADD of a score is a
# no-op); a score leaves it (by score, whatever its text) when ZCOUNT finds no user holding
# it any more. Dense
# ranks count it. A window with users but no distinct-scores set was built before the set
# existed: the script answers {-2, 'layout'} (a marker that is no version: "behind"), writes
# nothing, and the caller rebuilds, which builds the set.
# The window index (shared.redis_keys.competition_windows) gets each written window that
# was empty before and holds a ranking after, and loses one left empty (a window that had
# users before is listed already: no index write in the steady state); a new competition's
# first batch creates it (complete: WINDOWS_COMPLETE). A board built before the index
# existed gets none here (a partial index would hide its other windows): its next rebuild
# writes it whole.
# $user_offset is where the user id starts in a member, derived from the member encoding when
# the text is built (Lua strings are 1-based).
_WRITE_SCRIPT_TEMPLATE = Template("""
local versioned = ARGV[4] ~= ''
local windows = (#KEYS - 2 - (versioned and 1 or 0)) / 3
local function write_windows()
local marker = redis.call('GET', KEYS[1])
if not marker then
  if ARGV[1] ~= '0' then return -1 end
elseif marker ~= ARGV[1] then
  return {-2, marker}
end
local was_empty = {}  -- the distinct-scores set exists exactly when the window has users
for window = 1, windows do
  was_empty[window] = redis.call('EXISTS', KEYS[window * 3 + 2]) == 0
  if was_empty[window] and redis.call('EXISTS', KEYS[window * 3]) == 1 then
    return {-2, 'layout'}
  end
end
local indexed = true
if not marker then
  redis.call('SADD', KEYS[2], '$windows_complete')
else
  indexed = redis.call('EXISTS', KEYS[2]) == 1
end
redis.call('SET', KEYS[1], ARGV[2])
local user_offset = $user_offset
local top_n = tonumber(ARGV[3])
local function top_of(zkey)
  if top_n == 0 then return {} end
  return redis.call('ZRANGE', zkey, 0, top_n - 1, 'WITHSCORES')
end
local function same(a, b)
  if #a ~= #b then return false end
  for i = 1, #a, 2 do
    if string.sub(a[i], user_offset) ~= string.sub(b[i], user_offset) or a[i + 1] ~= b[i + 1] then
      return false
    end
  end
  return true
end
local result = {}
for window = 1, windows do
  local zkey, mkey, dkey = KEYS[window * 3], KEYS[window * 3 + 1], KEYS[window * 3 + 2]
  local before = top_of(zkey)
  local set = {}
  local function forget(score)
    if redis.call('ZCOUNT', zkey, score, score) == 0 then
      redis.call('ZREMRANGEBYSCORE', dkey, score, score)
    end
  end
  for line in string.gmatch(ARGV[window + 4], '[^\\n]+') do
    local user, member
    if string.sub(line, 1, 1) == 's' then
      local space = string.find(line, ' ', 3, true)
      member = string.sub(line, 3, space - 1)
      local score = string.sub(line, space + 1)
      user = string.sub(member, user_offset)
      local old = redis.call('HGET', mkey, user)
      local old_score = old and redis.call('ZSCORE', zkey, old)
      if old and old ~= member then redis.call('ZREM', zkey, old) end
      redis.call('ZADD', zkey, score, member)
      redis.call('HSET', mkey, user, member)
      if old_score and tonumber(old_score) ~= tonumber(score) then forget(old_score) end
      redis.call('ZADD', dkey, score, score)
    else
      user = string.sub(line, 3)
      local old = redis.call('HGET', mkey, user)
      if old then
        local old_score = redis.call('ZSCORE', zkey, old)
        redis.call('ZREM', zkey, old)
        if old_score then forget(old_score) end
      end
      redis.call('HDEL', mkey, user)
    end
    set[#set + 1] = member or false
  end
  local after = top_of(zkey)
  local size = redis.call('ZCARD', zkey)
  if indexed and (size > 0) == was_empty[window] then  -- only a window that appeared or emptied
    local name = ARGV[4 + windows + window]
    if size > 0 then redis.call('SADD', KEYS[2], name) else redis.call('SREM', KEYS[2], name) end
  end
  result[#result + 1] = size
  result[#result + 1] = same(before, after) and 0 or 1
  result[#result + 1] = #after / 2
  for i = 1, #after do result[#result + 1] = after[i] end
  for i = 1, #set do
    local rank = -1
    if set[i] then rank = redis.call('ZRANK', zkey, set[i]) end
    result[#result + 1] = rank
  end
end
return result
end
local reply = write_windows()
if not versioned then return reply end
return {reply, next_change_version(KEYS[#KEYS], ARGV[4])}
""")
_WRITE_SCRIPT = CHANGE_VERSION_LUA + _WRITE_SCRIPT_TEMPLATE.substitute(
    user_offset=USER_ID_START + 1, windows_complete=WINDOWS_COMPLETE
)

# Ranks in each style from one user's 0-based position and score (shared.rank_styles):
# unique = position + 1; standard = 1 + the users with a strictly better score (ZCOUNT of
# the ranking up to the score, exclusive: O(log N)); dense = 1 + the distinct scores strictly
# better (ZCOUNT of the distinct-scores set: O(log D)). Both count the tie-free part of the
# order (the sorted-set score), so the tie-break (the member) never enters them.
# KEYS: built marker, sorted set, members hash, distinct-scores set. ARGV: 1 to count dense
# ranks (else 0), then user ids.
# Returns -1 when the marker is missing, -3 when a dense read finds users but no distinct
# scores (built before they existed: rebuild), else {size, pos1, score1, better1, dense1,
# pos2, ...} with pos -1 and score "" for absent users; better counts the users with a
# strictly better score, dense the distinct scores strictly better (-1 when not asked).
_RANKS_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local size = redis.call('ZCARD', KEYS[2])
local dense = ARGV[1] == '1'
if dense and size > 0 and redis.call('EXISTS', KEYS[4]) == 0 then return -3 end
local result = {size}
for i = 2, #ARGV do
  local member = redis.call('HGET', KEYS[3], ARGV[i])
  local rank = member and redis.call('ZRANK', KEYS[2], member)
  if rank then
    local score = redis.call('ZSCORE', KEYS[2], member)
    result[#result + 1] = rank
    result[#result + 1] = score
    result[#result + 1] = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. score)
    result[#result + 1] = dense and redis.call('ZCOUNT', KEYS[4], '-inf', '(' .. score) or -1
  else
    result[#result + 1] = -1
    result[#result + 1] = ''
    result[#result + 1] = -1
    result[#result + 1] = -1
  end
end
return result
"""

LAYOUT_STALE = -3
"""The ranks script's answer when a dense read finds a window without its distinct scores."""


# The rebuild's swap, a compare-and-set on the built marker (every write of a competition's
# keys also writes its marker, always to a new value): KEYS: built marker, window index, then
# per rebuilt window (live, temporary) pairs, then the live keys to delete. ARGV: 1 if the
# marker existed when the rebuild began (else 0), its value then, the version to set, the
# number of pairs, then the index's complete mark and the rebuilt windows' names (the index is
# replaced by exactly them; without them it is only removed: a competition PostgreSQL does
# not hold gets no index, so nothing of it outlives its marker).
# Returns 0 (nothing done) when the marker changed since, else 1. One script rather than
# WATCH/MULTI/EXEC: the same atomic step on one Redis and on a Redis Cluster node (all keys
# share the competition's hash tag), whose client runs transactions through threads. Old keys
# go by UNLINK (RENAME onto an existing key would free it inline): a board of a million members
# is freed by Redis's background thread instead of stalling every client for its free.
_SWAP_SCRIPT = """
local marker = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if marker then return 0 end
elseif marker ~= ARGV[2] then
  return 0
end
local pairs_end = 2 + 2 * tonumber(ARGV[4])
for i = 3, pairs_end, 2 do
  redis.call('UNLINK', KEYS[i])
  redis.call('RENAME', KEYS[i + 1], KEYS[i])
end
for i = pairs_end + 1, #KEYS do redis.call('UNLINK', KEYS[i]) end
redis.call('DEL', KEYS[2])
if #ARGV >= 5 then
  redis.call('SADD', KEYS[2], ARGV[5])
  for i = 6, #ARGV do redis.call('SADD', KEYS[2], ARGV[i]) end
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""


DELETED_MARKER_PREFIX = "deleted:"
"""A built marker starting with this is a deleted competition's tombstone (never a version:
staleness reads it as behind, so a competition created again under the id is rebuilt)."""
DELETED_MARKER_TTL_S = 600
"""How long a deleted competition's tombstone marker outlives it (then no key is left)."""


def is_tombstone(marker: bytes | str | None) -> bool:
    """Whether a built marker's value is a deleted competition's tombstone."""
    if marker is None:
        return False
    text = marker.decode() if isinstance(marker, bytes) else marker
    return text.startswith(DELETED_MARKER_PREFIX)


class Staleness(StrEnum):
    """How a competition's built marker disagrees with PostgreSQL's standings version."""

    MISSING = "missing"
    """No marker: Redis lost the competition (flushed, restarted empty) or never built it."""
    BEHIND = "behind"
    """An older version (or a marker from before versions): Redis lost some writes."""
    AHEAD = "ahead"
    """A newer version: Redis kept writes PostgreSQL rolled back, or PostgreSQL was restored."""


def staleness(marker: bytes | str | None, version: int) -> Staleness | None:
    """How ``marker`` (a built marker's value) disagrees with PostgreSQL's ``version``.

    None when Redis reflects exactly that version. Markers written before versions existed
    hold a timestamp, which is not an integer: they count as behind (and are rebuilt once).
    """
    if marker is None:
        return Staleness.MISSING
    text = marker.decode() if isinstance(marker, bytes) else marker
    try:
        held = int(text)
    except ValueError:
        return Staleness.BEHIND
    if held == version:
        return None
    return Staleness.BEHIND if held < version else Staleness.AHEAD


async def read_standings_version(connection: DbConnection, competition_id: str) -> int:
    """PostgreSQL's standings version of a competition (0: no batch applied yet)."""
    version = await connection.fetchval(STANDINGS_VERSION_SQL, competition_id)
    return int(version) if version is not None else 0


@dataclass(frozen=True, slots=True)
class VersionStep:
    """The standings versions of one write: Redis must hold ``expected``; it then holds ``new``.

    The ranker passes PostgreSQL's version before its batch and after it (``expected + 1``).
    """

    expected: int
    new: int


@dataclass(frozen=True, slots=True)
class StandingWrite:
    """Set ``user_id``'s standing (``value`` reached at ``reached_at``), or remove it."""

    user_id: str
    value: float | None
    reached_at: datetime | None

    @property
    def is_removal(self) -> bool:
        """Whether this write removes the user from the window."""
        return self.value is None


@dataclass(frozen=True, slots=True)
class WindowResult:
    """A window after a write: its size and each written user's 1-based rank (None: gone).

    With a top N requested (:meth:`LeaderboardStore.queue_write`), also the top after the
    write as ``(user_id, value)`` and whether it differs from the top before.
    """

    total: int
    ranks: dict[str, int | None]
    top: list[tuple[str, float]] = field(default_factory=list)
    top_changed: bool = False


@dataclass(frozen=True, slots=True)
class UserRanks:
    """Ranks (in the competition's rank style) and scores of some users in a window.

    ``positions`` holds each found user's 0-based place in the tie-broken order (sort by it
    to list users best first, ties in first-reached order) and ``percentiles`` each found
    user's :func:`shared.rank_styles.percentile`.
    """

    total: int
    found: dict[str, LeaderboardEntry]
    positions: dict[str, int] = field(default_factory=dict)
    percentiles: dict[str, float] = field(default_factory=dict)


class CompetitionNotBuiltError(Exception):
    """The competition's Redis keys are missing or stale: rebuild from PostgreSQL first.

    ``staleness`` says which (readers only detect a missing marker; writes detect all three).
    """

    def __init__(self, competition_id: str, staleness: Staleness = Staleness.MISSING) -> None:
        super().__init__(f"{competition_id} ({staleness.value})")
        self.competition_id = competition_id
        self.staleness = staleness


class LeaderboardStore:
    """Reads and writes one Redis (or Cluster) for every competition under a key prefix."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._write = redis.register_script(_WRITE_SCRIPT)
        self._ranks = redis.register_script(_RANKS_SCRIPT)
        self._swap = redis.register_script(_SWAP_SCRIPT)

    @property
    def write_scripts(self) -> tuple[AsyncScript, ...]:
        """The scripts :meth:`queue_write` sends by SHA (for :func:`execute_scripted`)."""
        return (self._write,)

    # --- writes ---------------------------------------------------------------------------
    async def write(
        self,
        competition_id: str,
        sort_order: SortOrder,
        writes: Mapping[str, Sequence[StandingWrite]],
        step: VersionStep,
    ) -> dict[str, WindowResult]:
        """Apply absolute standings per window atomically (a replay writes the same state).

        Raises :class:`CompetitionNotBuiltError` when the competition has not been built or
        its marker is not at ``step.expected``; the caller then rebuilds it from PostgreSQL
        (which already holds these writes).
        """
        keys, arguments = self.write_command(competition_id, sort_order, writes, 0, step)
        reply = await self._write(keys=keys, args=arguments)
        results = self.parse_write_reply(writes, sort_order, reply, step.expected)
        if isinstance(results, Staleness):
            raise CompetitionNotBuiltError(competition_id, results)
        return results

    def queue_write(
        self,
        pipe: RedisPipeline,
        competition_id: str,
        sort_order: SortOrder,
        writes: Mapping[str, Sequence[StandingWrite]],
        top_n: int,
        step: VersionStep,
        change_version_at_ms: int | None = None,
    ) -> None:
        """Queue the same atomic write as :meth:`write` on ``pipe`` (one round trip per batch).

        Each window's result also carries its top ``top_n`` after the write and whether it
        changed. Parse the reply with :meth:`parse_write_reply` (a :class:`Staleness`:
        nothing was written). With ``change_version_at_ms`` (now, in ms) the same script also
        takes the competition's next change-message version (:data:`CHANGE_VERSION_LUA`):
        the reply is then ``[write reply, version]`` (:meth:`split_versioned_reply`).
        """
        keys, arguments = self.write_command(
            competition_id, sort_order, writes, top_n, step, change_version_at_ms
        )
        queue_script(pipe, self._write, keys, arguments)

    def write_command(
        self,
        competition_id: str,
        sort_order: SortOrder,
        writes: Mapping[str, Sequence[StandingWrite]],
        top_n: int,
        step: VersionStep,
        change_version_at_ms: int | None = None,
    ) -> tuple[list[str], list[str | float | int]]:
        """The write script's keys and arguments for ``writes`` (tops of ``top_n``; 0: none;
        the next change version too, with ``change_version_at_ms``)."""
        keys = [built_key(self.prefix, competition_id), windows_key(self.prefix, competition_id)]
        arguments: list[str | float | int] = [
            str(step.expected),
            str(step.new),
            top_n,
            "" if change_version_at_ms is None else str(change_version_at_ms),
        ]
        descending = sort_order is SortOrder.DESC
        names: list[str] = []
        for window, items in writes.items():
            if not items:
                continue
            names.append(window)
            keys += [
                ranking_key(self.prefix, competition_id, window),
                members_key(self.prefix, competition_id, window),
                distinct_key(self.prefix, competition_id, window),
            ]
            arguments.append(
                "".join(
                    f"d {write.user_id}\n"
                    if write.value is None or write.reached_at is None
                    else f"s {encode_member(write.user_id, write.reached_at)}"
                    f" {-write.value if descending else write.value!r}\n"
                    for write in items
                )
            )
        arguments += names
        if change_version_at_ms is not None:
            keys.append(version_key(self.prefix, competition_id))
        return keys, arguments

    @staticmethod
    def split_versioned_reply(reply: object) -> tuple[object, int]:
        """A versioned write's reply as (write reply for :meth:`parse_write_reply`, the next
        change-message version)."""
        if not isinstance(reply, list) or len(reply) != 2:
            raise TypeError(f"not a versioned write reply: {reply!r}")
        return reply[0], int(reply[1])

    @staticmethod
    def parse_write_reply(
        writes: Mapping[str, Sequence[StandingWrite]],
        sort_order: SortOrder,
        reply: object,
        expected_version: int,
    ) -> dict[str, WindowResult] | Staleness:
        """Each window's result from the write script's reply, or why nothing was written."""
        if reply == _NOT_BUILT or not isinstance(reply, list):
            return Staleness.MISSING
        if reply and reply[0] == _OTHER_VERSION:
            return staleness(reply[1], expected_version) or Staleness.BEHIND
        results: dict[str, WindowResult] = {}
        descending = sort_order is SortOrder.DESC  # inlined standing_value: hot loop
        position = 0
        for window, items in writes.items():
            if not items:
                continue
            total, changed, size = reply[position : position + 3]
            position += 3
            top = reply[position : position + 2 * size]
            position += 2 * size
            ranks = reply[position : position + len(items)]
            position += len(items)
            results[window] = WindowResult(
                total=int(total),
                ranks={
                    write.user_id: rank + 1 if rank >= 0 else None
                    for write, rank in zip(items, ranks, strict=True)
                },
                top=[
                    (
                        member_user_id(member),
                        (-float(score) if descending else float(score)) + 0.0,
                    )
                    for member, score in zip(top[::2], top[1::2], strict=True)
                ],
                top_changed=changed == 1,
            )
        return results

    async def rebuild(
        self,
        source: asyncpg.Pool | DbConnection,
        competition_id: str,
        sort_order: SortOrder,
    ) -> int:
        """Rebuild every window of a competition from PostgreSQL standings, atomically.

        The standings and the standings version are read in one consistent view: from a pool,
        in a read-only REPEATABLE READ transaction; from a connection, as it is, because the
        caller holds the competition's advisory lock, under which no batch can commit.
        Windows are built into temporary keys and renamed by one script that also sets the
        marker to that version, unless the marker changed since the rebuild began (every
        write of the competition's keys also writes the marker, as WATCH would see): if a
        ranker writes meanwhile, the rebuild starts over, so a newer standing is never
        replaced by an older snapshot. Returns the standings loaded.

        Callers pass the primary, never a read replica: the marker must be the primary's
        version, which batches and the reconciler compare it with (docs/operations.md, "The
        rebuild rule").
        """
        for _attempt in range(_REBUILD_ATTEMPTS):
            try:
                return await self._rebuild_once(source, competition_id, sort_order)
            except WatchError:
                logger.info("rebuild of %s raced with a write; retrying", competition_id)
        raise RuntimeError(f"rebuild of {competition_id} kept racing with writes")

    async def _rebuild_once(
        self,
        source: asyncpg.Pool | DbConnection,
        competition_id: str,
        sort_order: SortOrder,
    ) -> int:
        marker = built_key(self.prefix, competition_id)
        token = uuid.uuid4().hex
        # read before anything else: a write from here on changes it and the swap refuses
        marker_before = await self.redis.get(marker)
        existing_windows = await competition_windows(self.redis, self.prefix, competition_id)
        exists, version, rows = await _read_standings(source, competition_id)
        if not exists and is_tombstone(marker_before):
            # deleted: building it would bring back keys the deletion removed. A view read
            # before the deletion's commit cannot swap either: the deletion changes the
            # marker after it (see delete)
            return 0
        by_window: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for row in rows:
            by_window[row["window_label"]].append(row)
        temp_keys: list[str] = []
        renames: list[str] = []
        deletions: list[str] = []
        for window in sorted(existing_windows | set(by_window)):
            zkey = ranking_key(self.prefix, competition_id, window)
            mkey = members_key(self.prefix, competition_id, window)
            dkey = distinct_key(self.prefix, competition_id, window)
            if window in by_window:
                temp_z, temp_m = rebuild_key(zkey, token), rebuild_key(mkey, token)
                temp_d = rebuild_key(dkey, token)
                temp_keys += [temp_z, temp_m, temp_d]
                renames += [zkey, temp_z, mkey, temp_m, dkey, temp_d]
                await self._load(temp_z, temp_m, temp_d, by_window[window], sort_order)
            else:
                deletions += [zkey, mkey, dkey]
        swapped = await self._swap(
            keys=[marker, windows_key(self.prefix, competition_id), *renames, *deletions],
            args=[
                0 if marker_before is None else 1,
                marker_before or "",
                str(version),
                len(renames) // 2,
                *([WINDOWS_COMPLETE, *sorted(by_window)] if exists else []),
            ],
        )
        if not swapped:
            if temp_keys:
                await self.redis.unlink(*temp_keys)
            raise WatchError(f"the built marker of {competition_id} changed during its rebuild")
        return len(rows)

    async def _load(
        self,
        zkey: str,
        mkey: str,
        dkey: str,
        rows: Iterable[asyncpg.Record],
        sort_order: SortOrder,
    ) -> None:
        batch = list(rows)
        for start in range(0, len(batch), REBUILD_CHUNK):
            chunk = batch[start : start + REBUILD_CHUNK]
            members = {
                encode_member(row["user_id"], row["reached_at"]): redis_score(
                    row["score"], sort_order
                )
                for row in chunk
            }
            users = {member_user_id(member): member for member in members}
            # one member per distinct score; a score in several chunks is added again (same
            # member and score: a no-op)
            distinct = {repr(score): score for score in members.values()}
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(zkey, members)
                pipe.hset(mkey, mapping=users)  # type: ignore[arg-type]
                pipe.zadd(dkey, distinct)
                await pipe.execute()

    async def is_built(self, competition_id: str) -> bool:
        """Whether the competition's keys exist (built from PostgreSQL since Redis started)."""
        return bool(await self.redis.exists(built_key(self.prefix, competition_id)))

    async def built_markers(self, competition_ids: Sequence[str]) -> list[str | None]:
        """Each competition's built marker (None: missing), in order.

        One GET per competition, pipelined in chunks: no multi-key command spans
        competitions, whose keys live in different hash slots on a Redis Cluster.
        """
        markers: list[str | None] = []
        for start in range(0, len(competition_ids), MARKER_CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for competition_id in competition_ids[start : start + MARKER_CHUNK]:
                    pipe.get(built_key(self.prefix, competition_id))
                replies = await pipe.execute()
            markers += [reply.decode() if isinstance(reply, bytes) else reply for reply in replies]
        return markers

    async def delete(self, competition_id: str) -> None:
        """Remove a deleted competition's keys, leaving only a tombstone marker that expires.

        The marker is set first, to a value no rebuild can have read before (``deleted:`` and
        a fresh token), then every other key of the competition is deleted: a rebuild that
        read the marker before (and so may hold standings from before the deletion) fails its
        compare-and-set swap and starts over, and a rebuild starting over finds the
        competition gone in PostgreSQL and writes nothing. The deletion calls this twice
        (see ``services.ingest.competitions.delete_competition``): before its PostgreSQL
        commit and after it, under the competition lock. The tombstone expires after
        :data:`DELETED_MARKER_TTL_S`, longer than any rebuild's reads take.
        """
        marker = built_key(self.prefix, competition_id)
        await self.redis.set(
            marker, f"{DELETED_MARKER_PREFIX}{uuid.uuid4().hex}", ex=DELETED_MARKER_TTL_S
        )
        keys = [
            key
            for key in await competition_keys(self.redis, self.prefix, competition_id)
            if (key.decode() if isinstance(key, bytes) else key) != marker
        ]
        if keys:
            await self.redis.unlink(*keys)  # one slot: the keys share the {cid} hash tag

    async def drop(self, competition_id: str) -> None:
        """Delete every key of a competition (marker included)."""
        keys = await competition_keys(self.redis, self.prefix, competition_id)
        if keys:
            await self.redis.unlink(*keys)

    # --- reads ----------------------------------------------------------------------------
    async def top(
        self,
        competition_id: str,
        window: str,
        sort_order: SortOrder,
        start: int,
        count: int,
        rank_style: RankStyle = RankStyle.UNIQUE,
    ) -> list[LeaderboardEntry]:
        """Entries ranked ``start + 1`` to ``start + count`` (0-based positions), ranked in
        ``rank_style`` (from the top: every style agrees on the first entry, so no count)."""
        if count <= 0:
            return []
        rows: list[tuple[bytes, float]] = await self.redis.zrange(  # type: ignore[assignment]
            ranking_key(self.prefix, competition_id, window),
            start,
            start + count - 1,
            withscores=True,
        )
        entries = [
            LeaderboardEntry(
                rank=start + offset + 1,
                user_id=member_user_id(member),
                score=standing_value(float(score), sort_order),
            )
            for offset, (member, score) in enumerate(rows)
        ]
        if start == 0 or rank_style is RankStyle.UNIQUE or not entries:
            return restyled(rank_style, entries)
        first = await self.ranks(
            competition_id, window, sort_order, [entries[0].user_id], rank_style
        )
        first_entry = first.found.get(entries[0].user_id)
        return restyled(
            rank_style, entries, first_entry.rank if first_entry is not None else start + 1
        )

    async def ranks(
        self,
        competition_id: str,
        window: str,
        sort_order: SortOrder,
        user_ids: Sequence[str],
        rank_style: RankStyle = RankStyle.UNIQUE,
    ) -> UserRanks:
        """Rank (in ``rank_style``), score and percentile of each of ``user_ids``.

        Raises :class:`CompetitionNotBuiltError` if the competition is not built (``BEHIND``
        when a dense read finds a window built before its distinct scores were kept).
        """
        reply = await self._ranks(
            keys=[
                built_key(self.prefix, competition_id),
                ranking_key(self.prefix, competition_id, window),
                members_key(self.prefix, competition_id, window),
                distinct_key(self.prefix, competition_id, window),
            ],
            args=[1 if rank_style is RankStyle.DENSE else 0, *user_ids],
        )
        if reply == -1:
            raise CompetitionNotBuiltError(competition_id)
        if reply == LAYOUT_STALE:
            raise CompetitionNotBuiltError(competition_id, Staleness.BEHIND)
        total = int(reply[0])
        found: dict[str, LeaderboardEntry] = {}
        positions: dict[str, int] = {}
        percentiles: dict[str, float] = {}
        for index, user_id in enumerate(user_ids):
            position, score, better, dense_better = reply[1 + index * 4 : 5 + index * 4]
            position = int(position)
            if position >= 0:
                found[user_id] = LeaderboardEntry(
                    rank=rank_of(rank_style, position, int(better), int(dense_better)),
                    user_id=user_id,
                    score=standing_value(float(score), sort_order),
                )
                positions[user_id] = position
                percentiles[user_id] = percentile(int(better), total)
        return UserRanks(total=total, found=found, positions=positions, percentiles=percentiles)

    async def size(self, competition_id: str, window: str) -> int:
        """How many users a window ranks."""
        return int(await self.redis.zcard(ranking_key(self.prefix, competition_id, window)))


async def _read_standings(
    source: asyncpg.Pool | DbConnection, competition_id: str
) -> tuple[bool, int, list[asyncpg.Record]]:
    """Whether the competition exists, its standings version and standings, as of one
    moment (see rebuild)."""
    if isinstance(source, asyncpg.Pool):
        async with (
            source.acquire() as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await _read_standings(connection, competition_id)
    exists = await source.fetchval(  # a team board exists while its competition does
        "SELECT EXISTS (SELECT 1 FROM competitions WHERE id = $1)", competition_of(competition_id)
    )
    version = await read_standings_version(source, competition_id)
    rows = await source.fetch(
        "SELECT window_label, user_id, score, reached_at FROM standings WHERE competition_id = $1",
        competition_id,
    )
    return bool(exists), version, rows
