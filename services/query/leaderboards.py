"""Reading rankings from Redis: timeouts, a circuit breaker, and rebuilds from PostgreSQL.

Every read checks the competition's ``built`` marker in the same Lua call (see
:mod:`shared.leaderboard_store`). A missing marker means Redis lost the competition: it is
rebuilt from PostgreSQL once per process (single-flight; late arrivals see the marker and skip
the rebuild) and the read is retried.

Cursor pages continue after an *anchor*: the ``(score, member)`` of the last entry served.
If the anchor still holds that score, the page starts right after it; if it moved or left,
the page starts at the position the anchor would have (a binary search over the tied
members). See :mod:`services.query.routes` for what that guarantees to clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from redis.exceptions import RedisError

from services.query.circuit_breaker import CircuitBreaker, CircuitOpenError
from shared.db import POSTGRES_FAILURES
from shared.errors import DependencyUnavailableError
from shared.leaderboard import member_user_id, standing_value
from shared.leaderboard_store import CompetitionNotBuiltError, LeaderboardStore, UserRanks
from shared.redis_keys import built_key, members_key, ranking_key
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition
from shared.single_flight import SingleFlight

from .metrics import REBUILDS, REDIS_UNAVAILABLE

logger = logging.getLogger(__name__)
T = TypeVar("T")

REDIS_FAILURES = (RedisError, OSError, TimeoutError)

# Members are compared byte-wise by hand: Lua's '<' uses the server's collation locale.
_BYTES_LE = """
local function bytes_le(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
"""

# KEYS: built marker, sorted set. ARGV: count, then optionally anchor score and member.
# Returns -1 when not built, else {start (0-based), {member, score, ...}}.
_PAGE_SCRIPT = (
    _BYTES_LE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local count = tonumber(ARGV[1])
local start = 0
if #ARGV >= 3 then
  local score, member = ARGV[2], ARGV[3]
  local rank = redis.call('ZRANK', KEYS[2], member)
  if rank and tonumber(redis.call('ZSCORE', KEYS[2], member)) == tonumber(score) then
    start = rank + 1
  else
    local lo = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. score)
    local hi = redis.call('ZCOUNT', KEYS[2], '-inf', score)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if bytes_le(redis.call('ZRANGE', KEYS[2], mid, mid)[1], member) then
        lo = mid + 1
      else
        hi = mid
      end
    end
    start = lo
  end
end
return {start, redis.call('ZRANGE', KEYS[2], start, start + count - 1, 'WITHSCORES')}
"""
)

# KEYS: built marker, sorted set, members hash. ARGV: user id, radius.
# Returns -1 when not built, else {total, rank (0-based, -1 absent), start, {member, score...}}.
_AROUND_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local total = redis.call('ZCARD', KEYS[2])
local member = redis.call('HGET', KEYS[3], ARGV[1])
local rank = member and redis.call('ZRANK', KEYS[2], member)
if not rank then return {total, -1, 0, {}} end
local radius = tonumber(ARGV[2])
local start = math.max(0, rank - radius)
return {total, rank, start, redis.call('ZRANGE', KEYS[2], start, rank + radius, 'WITHSCORES')}
"""


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a cursor page continues: the Redis score and member of the last entry served."""

    score: str
    member: str


@dataclass(frozen=True, slots=True)
class Page:
    """Entries of one page, and the anchor of its last entry when more entries follow."""

    entries: list[LeaderboardEntry]
    next_anchor: Anchor | None


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """A user's rank with the entries around it (``rank`` is None when the user is absent)."""

    total: int
    rank: int | None
    entries: list[LeaderboardEntry]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class LeaderboardReader:
    """The query service's reads of Redis, guarded and self-healing."""

    def __init__(
        self,
        store: LeaderboardStore,
        pool: asyncpg.Pool,
        breaker: CircuitBreaker,
        *,
        timeout_s: float,
    ) -> None:
        self.store = store
        self.pool = pool
        self.breaker = breaker
        self.timeout_s = timeout_s
        self._rebuilds: SingleFlight[None] = SingleFlight()
        self._page = store.redis.register_script(_PAGE_SCRIPT)
        self._around = store.redis.register_script(_AROUND_SCRIPT)

    async def page(
        self, competition: Competition, window: str, anchor: Anchor | None, count: int
    ) -> Page:
        """Up to ``count`` entries from the top, or after ``anchor``."""
        zkey = ranking_key(self.store.prefix, competition.id, window)
        marker = built_key(self.store.prefix, competition.id)
        arguments: list[str | int] = [count + 1]
        if anchor is not None:
            arguments += [anchor.score, anchor.member]

        async def read() -> Any:
            reply = await self._page(keys=[marker, zkey], args=arguments)
            if reply == -1:
                raise CompetitionNotBuiltError(competition.id)
            return reply

        start, flat = await self._read(competition, read)
        rows = [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]
        more = len(rows) > count
        rows = rows[:count]
        entries = [
            LeaderboardEntry(
                rank=int(start) + offset + 1,
                user_id=member_user_id(member),
                score=standing_value(float(score), competition.sort_order),
            )
            for offset, (member, score) in enumerate(rows)
        ]
        next_anchor = Anchor(score=rows[-1][1], member=rows[-1][0]) if more and rows else None
        return Page(entries=entries, next_anchor=next_anchor)

    async def around(
        self, competition: Competition, window: str, user_id: str, radius: int
    ) -> Neighbourhood:
        """The user and up to ``radius`` entries above and below (clipped at the edges)."""
        prefix, cid = self.store.prefix, competition.id

        async def read() -> Any:
            reply = await self._around(
                keys=[
                    built_key(prefix, cid),
                    ranking_key(prefix, cid, window),
                    members_key(prefix, cid, window),
                ],
                args=[user_id, radius],
            )
            if reply == -1:
                raise CompetitionNotBuiltError(cid)
            return reply

        total, rank, start, flat = await self._read(competition, read)
        entries = [
            LeaderboardEntry(
                rank=int(start) + offset + 1,
                user_id=member_user_id(_text(flat[i])),
                score=standing_value(float(flat[i + 1]), competition.sort_order),
            )
            for offset, i in enumerate(range(0, len(flat), 2))
        ]
        user_rank = int(rank) + 1 if int(rank) >= 0 else None
        return Neighbourhood(total=int(total), rank=user_rank, entries=entries)

    async def ranks(self, competition: Competition, window: str, user_ids: list[str]) -> UserRanks:
        """Rank and score of each user (absent users are left out of ``found``)."""
        return await self._read(
            competition,
            lambda: self.store.ranks(competition.id, window, competition.sort_order, user_ids),
        )

    async def _read(self, competition: Competition, read: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._guarded(read)
        except CompetitionNotBuiltError:
            await self._rebuilds.run(competition.id, lambda: self._rebuild(competition))
            return await self._guarded(read)

    async def _guarded(self, read: Callable[[], Awaitable[T]]) -> T:
        """One Redis call, bounded by the timeout and the breaker; 503 when Redis fails."""
        try:
            return await self.breaker.call(lambda: asyncio.wait_for(read(), self.timeout_s))
        except CircuitOpenError as error:
            REDIS_UNAVAILABLE.labels("circuit_open").inc()
            raise DependencyUnavailableError(
                "the ranking store is unavailable", retry_after_s=error.retry_after_s
            ) from error
        except REDIS_FAILURES as error:
            REDIS_UNAVAILABLE.labels(type(error).__name__).inc()
            raise DependencyUnavailableError(
                "the ranking store did not answer", retry_after_s=1.0
            ) from error

    async def _rebuild(self, competition: Competition) -> None:
        """Rebuild from PostgreSQL unless a rebuild already landed (then nothing to do)."""
        if await self._guarded(lambda: self.store.is_built(competition.id)):
            return
        try:
            count = await self.breaker.call(
                lambda: self.store.rebuild(self.pool, competition.id, competition.sort_order)
            )
        except CircuitOpenError as error:
            REBUILDS.labels("failed").inc()
            raise DependencyUnavailableError(
                "the ranking store is unavailable", retry_after_s=error.retry_after_s
            ) from error
        except (*REDIS_FAILURES, *POSTGRES_FAILURES) as error:
            REBUILDS.labels("failed").inc()
            raise DependencyUnavailableError(
                "the leaderboard is being rebuilt; retry shortly", retry_after_s=1.0
            ) from error
        REBUILDS.labels("done").inc()
        logger.info("rebuilt %s from PostgreSQL (%d standings)", competition.id, count)
