"""PostgreSQL read replicas: reads spread round-robin, a failing or lagging replica skipped.

``PODIUM_DATABASE_READ_URL`` lists streaming replicas of ``PODIUM_DATABASE_URL``. A
:class:`ReadPool` sends the reads it is given to one of them in turn, and to the primary when
none is usable; nothing else changes for the caller, which may also ask for the primary
itself (:attr:`ReadPool.primary`) when it needs the newest data.

A replica is usable while a background check per replica (every
``PODIUM_DATABASE_REPLICA_CHECK_INTERVAL_S``, off the request path) answers and finds it at
most ``PODIUM_DATABASE_MAX_REPLICA_LAG_S`` behind; a read that fails on it with a connection
error, a timeout or a recovery conflict also marks it unusable at once and is run again on
the primary. The next good check puts it back.

How lag is measured: each check first reads the primary's WAL position
(``pg_current_wal_insert_lsn()``) and keeps the recent ``(time, position)`` samples; a
replica's lag is the age of the newest sample its replayed position
(``pg_last_wal_replay_lsn()``) has reached. That is an upper bound on how much older than the
primary's the data read there can be, in this process's clock only. The usual formula,
``now() - pg_last_xact_replay_timestamp()`` unless the received and replayed positions are
equal, is wrong both ways: on an idle primary
the last replayed transaction grows old though nothing is behind (hence its special case),
and a replica whose WAL receiver lost the primary has replayed everything it *received*, so
it reports 0 while it falls further behind; it also compares two machines' clocks.

Reads that must not miss the primary's last commits before some moment (the reconciler's
scan) pass a *fence*, the primary's WAL position at that moment: a replica serves them only
once it has replayed that far (waiting a little), else the primary does.

Positions on the primary are its *insert* position (``pg_current_wal_insert_lsn()``), not its
write position: with ``synchronous_commit = off`` a committed transaction's record may still
sit in the WAL buffers, behind the write position, and a fence there would let a replica that
lacks the commit serve the read. On an idle primary whose last record ended a WAL page, the
insert position points past the next page's header, where no replica's replay position (the
end of the last record) ever gets until another record is written; such a position is taken
back to the page boundary (:func:`record_end`), else an idle primary would look like growing
lag (measured: 14 s after a replica's 2 s freeze, until the next background record).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
from prometheus_client import Counter, Gauge
from pydantic import SecretStr

from shared import db
from shared.settings import CommonSettings
from shared.tasks import cancel_and_wait

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    DbConnection = asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]

logger = logging.getLogger(__name__)

T = TypeVar("T")

REPLICA_FAILURES = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, canceled
    asyncpg.exceptions.SerializationError,  # "canceling statement due to conflict with recovery"
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
"""What a read on a replica may raise because of the replica (not of the query): the read is
run again on the primary."""

_SHORT_PAGE_HEADER = 24  # SizeOfXLogShortPHD (MAXALIGNed, 64-bit builds)
_LONG_PAGE_HEADER = 40  # SizeOfXLogLongPHD: the first page of a WAL segment
_POSITION_SQL = (
    "SELECT pg_current_wal_insert_lsn()::text AS lsn,"
    " current_setting('wal_block_size')::int AS block_size,"
    " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size"
)
_FENCE_POLL_S = 0.02
_FENCE_WAIT_MAX_S = 1.0
_SAMPLES_KEPT_S_MIN = 30.0

REPLICA_LAG = Gauge(
    "podium_db_replica_lag_seconds",
    "Upper bound of how far a PostgreSQL read replica's data is behind the primary's, as"
    " last measured (kept at its last value while the replica does not answer).",
    ["replica"],
)
REPLICA_USABLE = Gauge(
    "podium_db_replica_usable",
    "1 while reads may go to a read replica (it answers and lags at most"
    " PODIUM_DATABASE_MAX_REPLICA_LAG_S), else 0.",
    ["replica"],
)
READS = Counter(
    "podium_db_reads_total",
    "Reads sent through the read pool, by the server that answered (a replica, or primary).",
    ["server"],
)
PRIMARY_FALLBACKS = Counter(
    "podium_db_primary_fallback_reads_total",
    "Reads meant for a read replica that the primary served instead: no replica usable"
    " (down or lagging), the replica failed during the read, or it had not replayed a"
    " fenced read's position in time.",
    ["reason"],
)


def lsn_value(lsn: str) -> int:
    """A WAL position (``'16/B374D848'``) as a number of bytes."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(position: int) -> str:
    """A number of bytes as a WAL position (``'16/B374D848'``)."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


def record_end(position: int, block_size: int, segment_size: int) -> int:
    """The insert ``position`` as the end of the last record (what replicas replay to).

    At the very start of a page, past its header, it is taken back to the page boundary: no
    record ends inside a page header, so the two are the same point of the WAL.
    """
    if position % segment_size == _LONG_PAGE_HEADER:
        return position - _LONG_PAGE_HEADER
    if position % block_size == _SHORT_PAGE_HEADER:
        return position - _SHORT_PAGE_HEADER
    return position


async def primary_position(connection: asyncpg.Pool | DbConnection) -> int:
    """The primary's WAL insert position, as :func:`record_end` (one query)."""
    row = await connection.fetchrow(_POSITION_SQL)
    assert row is not None
    return record_end(lsn_value(row["lsn"]), row["block_size"], row["segment_size"])


def replica_label(dsn: SecretStr) -> str:
    """How metrics and logs name a replica: ``host:port/database``, never its credentials."""
    parts = urlsplit(dsn.get_secret_value())
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"


@dataclass
class Replica:
    """One read replica: its pool and what the last check found."""

    label: str
    dsn: SecretStr
    pool: asyncpg.Pool
    usable: bool = False
    lag_s: float | None = None
    replay_lsn: int = 0
    checked_at: float = 0.0
    """When (monotonic) the replica last answered its check."""
    _check_connection: asyncpg.Connection | None = field(default=None, repr=False)

    def mark_unusable(self, why: str) -> None:
        """Stop sending reads here until a check finds it healthy again."""
        if self.usable:
            logger.warning("read replica %s skipped: %s", self.label, why)
        self.usable = False
        REPLICA_USABLE.labels(self.label).set(0)


class ReadPool:
    """Reads go to a usable replica in turn, else to the primary (see the module docstring).

    Parameters:
        primary: the pool of ``PODIUM_DATABASE_URL`` (owned by the caller).
        replicas: one per read replica (their pools are closed by :meth:`stop`).
        max_lag_s: a replica further behind than this is skipped.
        check_interval_s: how often each replica's health and lag are checked.
        check_timeout_s: how long a check may take before the replica counts as down.
        primary_dsn: the primary's DSN, for a connection of the checks' own (a hung primary
            must not hold a pooled connection, nor stall the replicas' checks); without it
            the checks sample the primary through ``primary``.
    """

    def __init__(
        self,
        primary: asyncpg.Pool,
        replicas: Sequence[Replica] = (),
        *,
        max_lag_s: float = 5.0,
        check_interval_s: float = 1.0,
        check_timeout_s: float = 1.0,
        primary_dsn: SecretStr | None = None,
    ) -> None:
        self.primary = primary
        self.primary_dsn = primary_dsn
        self._primary_check: asyncpg.Connection | None = None
        self.replicas = list(replicas)
        self.max_lag_s = max_lag_s
        self.check_interval_s = check_interval_s
        self.check_timeout_s = check_timeout_s
        self._turn = itertools.count()
        self._samples: deque[tuple[float, int]] = deque()
        self._keep_samples_s = max(_SAMPLES_KEPT_S_MIN, 4 * max_lag_s)
        self._monitor: asyncio.Task[None] | None = None
        self._checked = asyncio.Event()

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the background checks; returns after the first one (replicas known)."""
        if self.replicas and self._monitor is None:
            self._monitor = asyncio.create_task(self._run_checks(), name="db-replica-checks")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._checked.wait(), self.check_timeout_s * 2)

    async def stop(self) -> None:
        """Stop the checks and close the replicas' pools (idempotent; not the primary)."""
        if self._monitor is not None:
            await cancel_and_wait(self._monitor)  # its wait_for may swallow one cancel
            self._monitor = None
        for replica in self.replicas:
            if replica._check_connection is not None:
                replica._check_connection.terminate()
                replica._check_connection = None
            replica.pool.terminate()
        self._drop_primary_check()

    async def __aenter__(self) -> ReadPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- reads ----------------------------------------------------------------------------
    def usable_replicas(self) -> list[Replica]:
        """The replicas reads may go to now."""
        return [replica for replica in self.replicas if replica.usable]

    def _pick(self) -> Replica | None:
        usable = self.usable_replicas()
        if not usable:
            if self.replicas:
                PRIMARY_FALLBACKS.labels("no_usable_replica").inc()
            return None
        return usable[next(self._turn) % len(usable)]

    async def read(
        self,
        operation: Callable[[DbConnection], Awaitable[T]],
        *,
        fence_lsn: str | None = None,
    ) -> T:
        """Run ``operation`` (read-only) on a connection of a usable replica, else the primary.

        With ``fence_lsn`` (the primary's position at some moment, :meth:`fence`), a replica
        runs it only once it has replayed that far, waited for up to the lag bound (at most a
        second); otherwise the primary runs it.
        """
        replica = self._pick()
        if replica is not None:
            try:
                async with replica.pool.acquire() as connection:
                    if fence_lsn is None or await self._reached(connection, fence_lsn):
                        result = await operation(connection)
                        READS.labels(replica.label).inc()
                        return result
                PRIMARY_FALLBACKS.labels("behind_fence").inc()
            except REPLICA_FAILURES as error:
                replica.mark_unusable(f"a read failed: {error!r}")
                PRIMARY_FALLBACKS.labels("replica_failed").inc()
        async with self.primary.acquire() as connection:
            result = await operation(connection)
        READS.labels("primary").inc()
        return result

    async def fence(self, connection: DbConnection) -> str | None:
        """The primary's WAL position now (read on ``connection``, a primary one), for
        :meth:`read`'s ``fence_lsn``; None without replicas (no query)."""
        if not self.replicas:
            return None
        return lsn_text(await primary_position(connection))

    async def _reached(self, connection: DbConnection, fence_lsn: str) -> bool:
        deadline = time.monotonic() + min(self.max_lag_s, _FENCE_WAIT_MAX_S)
        while True:
            if await connection.fetchval(
                "SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", fence_lsn
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(_FENCE_POLL_S)

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        """``Pool.fetch`` on a replica (or the primary)."""
        return await self.read(lambda connection: connection.fetch(query, *args))

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        """``Pool.fetchrow`` on a replica (or the primary)."""
        return await self.read(lambda connection: connection.fetchrow(query, *args))

    async def fetchval(self, query: str, *args: Any) -> Any:
        """``Pool.fetchval`` on a replica (or the primary)."""
        return await self.read(lambda connection: connection.fetchval(query, *args))

    # --- checks ---------------------------------------------------------------------------
    async def _run_checks(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.check_once()
            except Exception:  # a bug, not an outage: never keep trusting an unchecked replica
                logger.exception("read replica checks failed; reads go to the primary")
                for replica in self.replicas:
                    replica.mark_unusable("its check crashed")
            self._checked.set()
            await asyncio.sleep(max(0.0, self.check_interval_s - (time.monotonic() - started)))

    async def check_once(self) -> None:
        """Sample the primary's WAL position, then check every replica against the samples.

        Without a fresh sample (the primary does not answer) no lag is measured: replicas
        keep their standing, so reads keep going to the usable ones while the primary is
        down, and they still must answer their own check.
        """
        measured = False
        try:
            position = await asyncio.wait_for(self._primary_position(), self.check_timeout_s)
            now = time.monotonic()
            self._samples.append((now, position))
            while self._samples and self._samples[0][0] < now - self._keep_samples_s:
                self._samples.popleft()
            measured = True
        except (*db.POSTGRES_FAILURES, asyncpg.InterfaceError) as error:
            self._drop_primary_check()  # never wait on a hung server
            logger.debug("primary WAL position unavailable: %r", error)
        await asyncio.gather(*(self._check(replica, measured) for replica in self.replicas))

    async def _primary_position(self) -> int:
        if self.primary_dsn is None:
            return await primary_position(self.primary)
        if self._primary_check is None or self._primary_check.is_closed():
            self._primary_check = await asyncpg.connect(
                self.primary_dsn.get_secret_value(), timeout=self.check_timeout_s
            )
        return await primary_position(self._primary_check)

    def _drop_primary_check(self) -> None:
        if self._primary_check is not None:
            self._primary_check.terminate()
            self._primary_check = None

    async def _check(self, replica: Replica, measured: bool) -> None:
        try:
            in_recovery, replayed = await asyncio.wait_for(
                self._replay_position(replica), self.check_timeout_s
            )
        except (*REPLICA_FAILURES, asyncpg.PostgresError) as error:
            if replica._check_connection is not None:
                replica._check_connection.terminate()  # never wait on a hung server
                replica._check_connection = None
            replica.mark_unusable(f"its check failed: {error!r}")
            return
        if not in_recovery or replayed is None:
            # promoted, or not a replica at all: it no longer follows the primary
            replica.mark_unusable("it is not in recovery (not following the primary)")
            return
        replica.checked_at = time.monotonic()
        replica.replay_lsn = lsn_value(replayed)
        lag_s = self._lag_s(replica.replay_lsn)
        if lag_s is None or not measured:
            return  # no fresh primary sample: standing unchanged
        replica.lag_s = lag_s
        REPLICA_LAG.labels(replica.label).set(lag_s)
        if lag_s > self.max_lag_s:
            replica.mark_unusable(f"it lags {lag_s:.1f} s (bound {self.max_lag_s} s)")
        elif not replica.usable:
            logger.info("read replica %s usable (lag %.3f s)", replica.label, lag_s)
            replica.usable = True
            REPLICA_USABLE.labels(replica.label).set(1)

    async def _replay_position(self, replica: Replica) -> tuple[bool, str | None]:
        if replica._check_connection is None or replica._check_connection.is_closed():
            replica._check_connection = await asyncpg.connect(
                replica.dsn.get_secret_value(), timeout=self.check_timeout_s
            )
        row = await replica._check_connection.fetchrow(
            "SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_replay_lsn()::text AS lsn"
        )
        assert row is not None
        return bool(row["in_recovery"]), row["lsn"]

    def _lag_s(self, replay_lsn: int) -> float | None:
        """Age of the newest primary sample ``replay_lsn`` covers (see the module docstring)."""
        if not self._samples:
            return None
        now = time.monotonic()
        for sampled_at, position in reversed(self._samples):
            if replay_lsn >= position:
                return now - sampled_at
        return now - self._samples[0][0]  # older than every kept sample: at least this


@contextlib.asynccontextmanager
async def open_read_pool(
    settings: CommonSettings, primary: asyncpg.Pool
) -> AsyncIterator[ReadPool]:
    """A :class:`ReadPool` over ``primary`` and ``PODIUM_DATABASE_READ_URL``'s replicas.

    A replica's pool opens no connection up front (``min_size=0``): a replica that is down
    when the service starts is skipped, not fatal.
    """
    replicas = []
    try:
        for dsn in settings.database_read_url:
            pool = await db.create_pool(settings, dsn=dsn, min_size=0)
            replicas.append(Replica(replica_label(dsn), dsn, pool))
        read_pool = ReadPool(
            primary,
            replicas,
            max_lag_s=settings.database_max_replica_lag_s,
            check_interval_s=settings.database_replica_check_interval_s,
            check_timeout_s=settings.db_connect_timeout_s,
            primary_dsn=settings.database_url,
        )
    except BaseException:
        for replica in replicas:
            replica.pool.terminate()
        raise
    async with read_pool:
        yield read_pool
