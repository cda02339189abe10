"""Reading rankings from Redis: timeouts, a circuit breaker, and rebuilds from PostgreSQL.

Every read checks the competition's ``built`` marker in the same Lua call (see
:mod:`shared.leaderboard_store`). A missing marker means Redis lost the competition: it is
rebuilt from PostgreSQL once per process (single-flight; late arrivals see the marker and skip
the rebuild) and the read is retried.

Cursor pages continue after an *anchor*: the ``(score, member)`` of the last entry served
(or, going back, end right before the anchor of the first entry served). If the anchor
still holds that score, the page starts right after it (ends right before it); if it moved
or left, at the position the anchor would have (a binary search over the tied members).
Ranks follow the competition's rank style (:mod:`shared.rank_styles`): one count per page,
for its first entry. See :mod:`services.query.routes` for what that guarantees to clients.
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
from shared.leaderboard_store import (
    LAYOUT_STALE,
    CompetitionNotBuiltError,
    LeaderboardStore,
    Staleness,
    UserRanks,
)
from shared.rank_styles import percentile, rank_of, run_ranks
from shared.redis_keys import built_key, distinct_key, members_key, ranking_key
from shared.schemas.change_message import LeaderboardEntry
from shared.schemas.competition import Competition, RankStyle
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

# KEYS: built marker, sorted set, distinct-scores set. ARGV: count, 1 to count dense ranks
# (else 0), the mode, then its arguments:
#   "top"                   the first page;
#   "after" <score> <member> the page after an anchor (cursor forward);
#   "before" <score> <member> the page ending right before an anchor (cursor back);
#   "rank" <N>              the page starting at the first entry ranked N or worse in the
#                           competition's style: unique, position N - 1; standard, that
#                           position, or the first after its tie group when the group
#                           starts above N; dense, the first holder of the N-th distinct score.
# Returns -1 when not built, -3 when dense counts find no distinct scores (a window built
# before them: rebuild), else {start (0-based), total, better, dense_better,
# {member, score, ...}}: better and dense_better are the first entry's counts of users and
# distinct scores strictly better (see shared.leaderboard_store's ranks script).
_PAGE_SCRIPT = (
    _BYTES_LE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local count = tonumber(ARGV[1])
local dense = ARGV[2] == '1'
local mode = ARGV[3]
local total = redis.call('ZCARD', KEYS[2])
if dense and total > 0 and redis.call('EXISTS', KEYS[3]) == 0 then return -3 end
local function position_of(score, member)
  local rank = redis.call('ZRANK', KEYS[2], member)
  if rank and tonumber(redis.call('ZSCORE', KEYS[2], member)) == tonumber(score) then
    return rank, true
  end
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
  return lo, false
end
local start, stop = 0, count - 1
if mode == 'after' then
  local position, held = position_of(ARGV[4], ARGV[5])
  start = held and position + 1 or position
  stop = start + count - 1
elseif mode == 'before' then
  local position = position_of(ARGV[4], ARGV[5])
  start = math.max(0, position - count)
  stop = position - 1
  if position == 0 then stop = count - 1 end -- nothing before it: the first page
elseif mode == 'rank' then
  local wanted = tonumber(ARGV[4])
  if ARGV[2] == '1' then
    local nth = redis.call('ZRANGE', KEYS[3], wanted - 1, wanted - 1, 'WITHSCORES')
    if #nth == 0 then start = total
    else start = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. nth[2]) end
  elseif ARGV[5] == 'standard' and wanted <= total then
    local at = redis.call('ZRANGE', KEYS[2], wanted - 1, wanted - 1, 'WITHSCORES')
    local better = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. at[2])
    if better + 1 == wanted then start = wanted - 1
    else start = redis.call('ZCOUNT', KEYS[2], '-inf', at[2]) end
  else
    start = math.min(wanted - 1, total)
  end
  stop = start + count - 1
end
local rows = {}
if stop >= start then rows = redis.call('ZRANGE', KEYS[2], start, stop, 'WITHSCORES') end
local better, dense_better = 0, 0
if #rows > 0 then
  better = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. rows[2])
  if dense then dense_better = redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. rows[2]) end
end
return {start, total, better, dense_better, rows}
"""
)

# KEYS: built marker, sorted set, members hash, distinct-scores set. ARGV: user id, radius,
# 1 to count dense ranks (else 0).
# Returns -1 when not built, -3 as the page script, else {total, rank (0-based, -1 absent),
# start, {member, score...}, better, dense_better, user_better}: better and dense_better of
# the first entry, user_better the users strictly better than the user (its percentile).
_AROUND_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local total = redis.call('ZCARD', KEYS[2])
local dense = ARGV[3] == '1'
if dense and total > 0 and redis.call('EXISTS', KEYS[4]) == 0 then return -3 end
local member = redis.call('HGET', KEYS[3], ARGV[1])
local rank = member and redis.call('ZRANK', KEYS[2], member)
if not rank then return {total, -1, 0, {}, 0, 0, 0} end
local radius = tonumber(ARGV[2])
local start = math.max(0, rank - radius)
local rows = redis.call('ZRANGE', KEYS[2], start, rank + radius, 'WITHSCORES')
local better = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. rows[2])
local dense_better = 0
if dense then dense_better = redis.call('ZCOUNT', KEYS[4], '-inf', '(' .. rows[2]) end
local user_better = redis.call('ZCOUNT', KEYS[2], '-inf',
  '(' .. redis.call('ZSCORE', KEYS[2], member))
return {total, rank, start, rows, better, dense_better, user_better}
"""


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a cursor page continues: the Redis score and member of the last entry served."""

    score: str
    member: str


@dataclass(frozen=True, slots=True)
class Page:
    """Entries of one page, how many users the window ranks, and the anchors of its first
    entry (when entries come before it) and of its last (when entries follow)."""

    entries: list[LeaderboardEntry]
    total: int
    next_anchor: Anchor | None
    prev_anchor: Anchor | None = None


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """A user's rank with the entries around it (``rank`` is None when the user is absent);
    ``percentile`` as :func:`shared.rank_styles.percentile`."""

    total: int
    rank: int | None
    entries: list[LeaderboardEntry]
    percentile: float = 0.0


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
        self,
        competition: Competition,
        window: str,
        anchor: Anchor | None,
        count: int,
        *,
        backward: bool = False,
        from_rank: int | None = None,
    ) -> Page:
        """Up to ``count`` entries: from the top, after ``anchor`` (before it when
        ``backward``), or from the first entry ranked ``from_rank`` or worse."""
        prefix, cid = self.store.prefix, competition.id
        style = competition.rank_style
        keys = [built_key(prefix, cid), ranking_key(prefix, cid, window)]
        keys.append(distinct_key(prefix, cid, window))
        arguments: list[str | int] = [count, 1 if style is RankStyle.DENSE else 0]
        if anchor is not None:
            arguments += ["before" if backward else "after", anchor.score, anchor.member]
        elif from_rank is not None:
            arguments += ["rank", from_rank, style.value]
        else:
            arguments.append("top")

        async def read() -> Any:
            reply = await self._page(keys=keys, args=arguments)
            if reply == -1:
                raise CompetitionNotBuiltError(cid)
            if reply == LAYOUT_STALE:
                raise CompetitionNotBuiltError(cid, Staleness.BEHIND)
            return reply

        start, total, better, dense_better, flat = await self._read(competition, read)
        start, total = int(start), int(total)
        rows = [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]
        entries = self._entries(
            competition, start, rows, rank_of(style, start, int(better), int(dense_better))
        )
        next_anchor = prev_anchor = None
        if rows and start + len(rows) < total:
            next_anchor = Anchor(score=rows[-1][1], member=rows[-1][0])
        if rows and start > 0:
            prev_anchor = Anchor(score=rows[0][1], member=rows[0][0])
        return Page(entries=entries, total=total, next_anchor=next_anchor, prev_anchor=prev_anchor)

    @staticmethod
    def _entries(
        competition: Competition, start: int, rows: list[tuple[str, str]], first_rank: int
    ) -> list[LeaderboardEntry]:
        """Entries of a contiguous run of ``(member, score)`` rows at ``start``, ranked in the
        competition's style from the first row's rank."""
        order = competition.sort_order
        scores = [standing_value(float(score), order) for _, score in rows]
        ranks = run_ranks(competition.rank_style, start, first_rank, scores)
        return [
            LeaderboardEntry(rank=rank, user_id=member_user_id(member), score=score)
            for (member, _), score, rank in zip(rows, scores, ranks, strict=True)
        ]

    async def around(
        self, competition: Competition, window: str, user_id: str, radius: int
    ) -> Neighbourhood:
        """The user and up to ``radius`` entries above and below (clipped at the edges)."""
        prefix, cid = self.store.prefix, competition.id
        style = competition.rank_style

        async def read() -> Any:
            reply = await self._around(
                keys=[
                    built_key(prefix, cid),
                    ranking_key(prefix, cid, window),
                    members_key(prefix, cid, window),
                    distinct_key(prefix, cid, window),
                ],
                args=[user_id, radius, 1 if style is RankStyle.DENSE else 0],
            )
            if reply == -1:
                raise CompetitionNotBuiltError(cid)
            if reply == LAYOUT_STALE:
                raise CompetitionNotBuiltError(cid, Staleness.BEHIND)
            return reply

        total, position, start, flat, better, dense_better, user_better = await self._read(
            competition, read
        )
        total, position, start = int(total), int(position), int(start)
        if position < 0:
            return Neighbourhood(total=total, rank=None, entries=[])
        rows = [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]
        entries = self._entries(
            competition, start, rows, rank_of(style, start, int(better), int(dense_better))
        )
        return Neighbourhood(
            total=total,
            rank=entries[position - start].rank,
            entries=entries,
            percentile=percentile(int(user_better), total),
        )

    async def ranks(self, competition: Competition, window: str, user_ids: list[str]) -> UserRanks:
        """Rank and score of each user (absent users are left out of ``found``)."""
        return await self._read(
            competition,
            lambda: self.store.ranks(
                competition.id, window, competition.sort_order, user_ids, competition.rank_style
            ),
        )

    async def _read(self, competition: Competition, read: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._guarded(read)
        except CompetitionNotBuiltError as error:
            # a missing marker may have been rebuilt by someone else meanwhile; a stale layout
            # (a dense read of a window built before distinct scores) must be rebuilt
            forced = error.staleness is not Staleness.MISSING
            await self._rebuilds.run(
                competition.id, lambda: self._rebuild(competition, forced=forced)
            )
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

    async def _rebuild(self, competition: Competition, *, forced: bool = False) -> None:
        """Rebuild from PostgreSQL unless a rebuild already landed (then nothing to do)."""
        if not forced and await self._guarded(lambda: self.store.is_built(competition.id)):
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
