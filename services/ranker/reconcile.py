"""The reconciler: every competition's Redis copy checked against PostgreSQL, stale ones healed.

A batch's write script notices a stale board of a competition it writes to (issue #17); a
competition nobody writes to would keep serving old standings after Redis restarted from an
older snapshot, or after a replica that missed the last writes was promoted. The reconciler
finds those. Each pass reads every ``(competition_id, version)`` of ``standings_versions``,
GETs the built markers in pipelined chunks (single-key commands: a competition's keys live in
their own hash slot on a Redis Cluster), and heals each mismatch under the competition's
advisory lock (:func:`services.ranker.heal.heal_competition`), then announces it with a
``rebuilt`` change message so notifier clients get a fresh snapshot and query caches drop the
competition.

Cadence, inside every ranker process (:func:`reconciling`): a probe every
``PODIUM_RECONCILE_PROBE_INTERVAL_S`` reads the Redis server's identity (``INFO server``:
``run_id``, new for every server process, so a restart or a promoted replica shows) and
runs a pass at once when it changed (and when the process starts); a pass also runs every
``PODIUM_RECONCILE_INTERVAL_S`` regardless, for what no identity change shows (a write
PostgreSQL rolled back after Redis took it, a PostgreSQL restored from a backup). So after a
Redis restart every board is healed within the probe interval plus one pass. Only one ranker
reconciles at a time (a session advisory lock per schema, tried, never waited for); the
others skip and try again at their next probe. ``podium reconcile`` runs one pass (a cron
job where rankers do not run the loop, or by hand).

Read replicas (``PODIUM_DATABASE_READ_URL``): the pass's scan of ``standings_versions`` (the
one read that grows with the number of competitions) goes to a replica, fenced at the
primary's WAL position taken first: the replica serves it only once it has replayed that far,
so every version it returns is at least the primary's when the pass began, and a board stale
then cannot equal it because of the replica's lag (if the replica does not get there within
a second, the primary serves the scan). Everything after the scan (the re-check under the
advisory lock, the rebuild, the announcement) reads the primary: a rebuild must stamp the
version of the standings it wrote, and batches compare the marker with the primary's version.

On a Redis Cluster (``PODIUM_REDIS_CLUSTER``) the identity joins every primary's ``run_id``
(:func:`shared.redis_client.server_identity`): a replica promoted after its master failed is
a new process among the primaries, so a failover triggers a pass at the next probe, like a
restart; the markers are read per competition from whichever node now owns its slot, so a
promoted replica that missed the last writes shows its boards as behind (docs/operations.md,
"Redis Cluster").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, cast

import asyncpg
from aiokafka import AIOKafkaProducer
from redis.exceptions import ConnectionError as RedisConnectionError

from services.ranker import metrics
from services.ranker.heal import heal_competition
from services.ranker.index import (
    NEXT_VERSION_SCRIPT,
    IndexedCompetition,
    change_message,
    read_back,
)
from services.ranker.planner import BatchPlan
from services.ranker.settings import RankerSettings
from shared.competitions import get_competitions
from shared.db import POSTGRES_FAILURES
from shared.leaderboard_store import LeaderboardStore, Staleness, staleness
from shared.read_replicas import ReadPool
from shared.redis_client import RedisClient, ServerIdentity, drop_idle_connections, server_identity
from shared.redis_keys import version_key
from shared.resources import open_resources
from shared.schemas.competition import Competition
from shared.tasks import cancel_and_wait
from shared.teams import boards_of, competition_of

if TYPE_CHECKING:
    from services.ranker.repository import DbConnection

logger = logging.getLogger(__name__)

_RETRY_SOON_S = 0.05


class Trigger(StrEnum):
    """Why a pass ran (the ``trigger`` label of ``podium_ranker_reconcile_passes_total``)."""

    REDIS_IDENTITY = "redis_identity"
    INTERVAL = "interval"
    COMMAND = "command"


@dataclass
class PassReport:
    """One pass: competitions checked, the stale ones found (and healed), how long it took.

    ``skipped``: another ranker held the reconcile lock, nothing was checked.
    """

    checked: int = 0
    healed: dict[str, Staleness] = field(default_factory=dict)
    skipped: bool = False
    duration_s: float = 0.0


def reconcile_lock_name(schema: str) -> str:
    """The reconcile lock's name: one per schema, as advisory locks are database-wide."""
    return f"podium-reconcile/{schema}"


class Reconciler:
    """Compares every competition's Redis copy with PostgreSQL and heals the stale ones."""

    def __init__(
        self,
        settings: RankerSettings,
        pool: asyncpg.Pool,
        redis: RedisClient,
        producer: AIOKafkaProducer,
        *,
        read_pool: ReadPool | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.read_pool = read_pool or ReadPool(pool)
        self.store = LeaderboardStore(redis, settings.redis_key_prefix)
        self.producer = producer
        self._next_version = redis.register_script(NEXT_VERSION_SCRIPT)
        # healed but not yet announced (Kafka failed): announced at the next pass
        self._unannounced: dict[str, Staleness] = {}

    async def redis_identity(self) -> ServerIdentity:
        """The Redis server's ``run_id`` and uptime (one INFO call per primary: the cheap
        probe)."""
        return await server_identity(self.store.redis)

    async def reconcile_once(
        self, trigger: Trigger, stale_before_pass_s: float | None = None
    ) -> PassReport:
        """One pass. ``stale_before_pass_s`` estimates how long a board found stale may have
        been so when the pass began (None: not measured, as for ``podium reconcile``)."""
        started = time.monotonic()
        report = PassReport()
        try:
            async with self.pool.acquire() as connection:
                if not await connection.fetchval(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                    reconcile_lock_name(self.settings.db_schema),
                ):
                    report.skipped = True
                    metrics.RECONCILE_PASSES.labels(trigger.value, "skipped").inc()
                    return report
                try:
                    await self._pass(connection, report, started, stale_before_pass_s)
                finally:
                    # a broken connection ended its session, and the lock with it
                    with contextlib.suppress(*POSTGRES_FAILURES):
                        await connection.execute(
                            "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                            reconcile_lock_name(self.settings.db_schema),
                        )
        except Exception:
            metrics.RECONCILE_PASSES.labels(trigger.value, "failed").inc()
            raise
        report.duration_s = time.monotonic() - started
        metrics.RECONCILE_PASS_SECONDS.observe(report.duration_s)
        metrics.RECONCILE_PASSES.labels(trigger.value, "done").inc()
        return report

    async def _pass(
        self,
        connection: DbConnection,
        report: PassReport,
        started: float,
        stale_before_pass_s: float | None,
    ) -> None:
        fence_lsn = await self.read_pool.fence(connection)
        rows = await self.read_pool.read(
            lambda replica: replica.fetch(
                "SELECT competition_id, version FROM standings_versions ORDER BY competition_id"
            ),
            fence_lsn=fence_lsn,
        )
        ids = [row["competition_id"] for row in rows]
        markers = await self.store.built_markers(ids)
        report.checked = len(ids)
        suspects = {
            row["competition_id"]: found
            for row, marker in zip(rows, markers, strict=True)
            if (found := staleness(marker, row["version"])) is not None
        }
        if not suspects and not self._unannounced:
            return
        board_ids = suspects.keys() | self._unannounced
        competitions = boards_of(
            await get_competitions(
                cast(asyncpg.Connection, connection),
                sorted({competition_of(board_id) for board_id in board_ids}),
            ),
            board_ids,
        )  # a team board is healed like a competition (shared.teams)
        for competition_id in sorted(suspects):
            competition = competitions.get(competition_id)
            if competition is None:
                continue  # a version row without its competition: nothing to show
            healed = await heal_competition(
                connection, self.store, competition_id, competition.sort_order
            )
            if healed.found is None:
                continue  # healed by a batch meanwhile
            metrics.REBUILDS.inc()
            metrics.STALE_BOARDS.labels(healed.found.value, "reconciler").inc()
            if stale_before_pass_s is not None:
                metrics.STALE_BOARD_SECONDS.observe(
                    stale_before_pass_s + time.monotonic() - started
                )
            report.healed[competition_id] = healed.found
            self._unannounced[competition_id] = healed.found
        for competition_id, found in sorted(self._unannounced.items()):
            competition = competitions.get(competition_id)
            if competition is not None:
                await self._announce(connection, competition, found)
            del self._unannounced[competition_id]

    async def _announce(
        self, connection: DbConnection, competition: Competition, found: Staleness
    ) -> None:
        """Publish a ``rebuilt`` change message: every window's total and top, no users.

        The windows come from PostgreSQL (an index range; Redis holds the same ones after the
        rebuild), not from a SCAN of the whole keyspace.
        """
        windows = [
            row["window_label"]
            for row in await connection.fetch(
                "SELECT DISTINCT window_label FROM standings WHERE competition_id = $1",
                competition.id,
            )
        ]
        version = int(
            await self._next_version(
                keys=[version_key(self.store.prefix, competition.id)],
                args=[int(time.time() * 1000)],
            )
        )
        item = await read_back(
            self.store,
            IndexedCompetition(
                competition, {window: [] for window in sorted(windows)}, None, version, found
            ),
            self.settings.ranker_top_n,
        )
        await self.producer.send_and_wait(
            self.settings.topic_changes,
            key=competition.id.encode(),
            value=change_message(item, BatchPlan(), datetime.now(UTC)),
        )

    async def run(self) -> None:
        """Probe Redis and reconcile on its cadence until cancelled (never raises otherwise).

        The identity is recorded only after a pass this process completed, and read before
        it: a restart during a pass is noticed at the next probe. After a failure the next
        try comes after ``_RETRY_SOON_S`` once, then at the probe interval; a Redis connection
        failure also drops the pool's idle connections, which were opened to the server that
        went away (each would fail once more: the retry would find the next one).
        """
        seen: str | None = None
        last_pass_at: float | None = None
        failures = 0
        while True:
            try:
                identity = await self.redis_identity()
                due = self._due(identity, seen, last_pass_at)
                if due is not None:
                    trigger, stale_before_pass_s = due
                    passed_at = time.monotonic()
                    report = await self.reconcile_once(trigger, stale_before_pass_s)
                    last_pass_at = passed_at  # a skipped pass ran elsewhere: it covers it
                    if not report.skipped:
                        seen = identity.run_id
                    if report.healed:
                        logger.warning(
                            "reconciler healed %d of %d competition(s) in %.3f s (%s): %s",
                            len(report.healed),
                            report.checked,
                            report.duration_s,
                            trigger.value,
                            ", ".join(f"{cid} ({why})" for cid, why in report.healed.items()),
                        )
                failures = 0
            except Exception as error:  # Redis/PostgreSQL/Kafka down: try again
                failures += 1
                logger.warning("reconcile probe or pass failed (%d): %r", failures, error)
                if isinstance(error, RedisConnectionError):
                    await drop_idle_connections(self.store.redis)
            probe_interval_s = self.settings.reconcile_probe_interval_s
            await asyncio.sleep(
                min(_RETRY_SOON_S, probe_interval_s) if failures == 1 else probe_interval_s
            )

    def _due(
        self, identity: ServerIdentity, seen: str | None, last_pass_at: float | None
    ) -> tuple[Trigger, float] | None:
        """Whether a pass is due, why, and how long a stale board may have been stale.

        A new identity (or none seen yet): boards may be stale since that server started.
        Otherwise, every ``PODIUM_RECONCILE_INTERVAL_S``: stale at most since the last pass.
        """
        if identity.run_id != seen:
            return Trigger.REDIS_IDENTITY, identity.uptime_s
        since_pass_s = time.monotonic() - (last_pass_at or 0.0)
        if last_pass_at is None or since_pass_s >= self.settings.reconcile_interval_s:
            return Trigger.INTERVAL, since_pass_s if last_pass_at is not None else 0.0
        return None


@contextlib.asynccontextmanager
async def reconciling(
    settings: RankerSettings,
    pool: asyncpg.Pool,
    redis: RedisClient,
    producer: AIOKafkaProducer,
    *,
    read_pool: ReadPool | None = None,
) -> AsyncIterator[Reconciler]:
    """Run the reconciler's loop in the background for the duration of the block."""
    reconciler = Reconciler(settings, pool, redis, producer, read_pool=read_pool)
    task = asyncio.create_task(reconciler.run(), name="ranker-reconciler")
    try:
        yield reconciler
    finally:
        await cancel_and_wait(task)


async def reconcile_command(settings: RankerSettings) -> PassReport:
    """``podium reconcile``: one pass with the service's own clients."""
    async with open_resources(
        settings, postgres=True, read_replicas=True, redis=True, producer=True
    ) as resources:
        reconciler = Reconciler(
            settings,
            resources.require_pool(),
            resources.require_redis(),
            resources.require_producer(),
            read_pool=resources.require_read_pool(),
        )
        return await reconciler.reconcile_once(Trigger.COMMAND)
