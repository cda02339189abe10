"""The weekly partitions of ``score_events`` and the dedup horizon's watermark (issue #18).

``score_events`` is range-partitioned by ``event_ts`` into weeks (Monday 00:00 UTC to the
next Monday), named ``score_events_wYYYYMMDD`` after their first day, plus a DEFAULT
partition that takes any row no week holds (far-future event times, the rows carried over by
migration 0005, a week not created yet), so an insert never fails for lack of a partition.

:func:`maintain_partitions` creates the weeks from the watermark's to a few weeks ahead
(moving any rows the DEFAULT partition holds for them) and, when asked to prune, raises the
watermark ``score_events_pruned.pruned_before`` to the start of the week of
``now - horizon - PRUNE_GRACE``, detaches and drops every week entirely before it and deletes
the DEFAULT partition's rows before it. The ranker dead-letters any event older than the
watermark (``services/ranker/rules.py``): its row may be gone, so a duplicate could not be
recognised. Exactness needs the watermark and the partitions to change together as seen by a
ranker batch: maintenance holds :data:`LOCK_ID` exclusively for its transaction and every
ranker batch holds it shared (:func:`held_shared`) before it reads the watermark and looks
up event ids, so a batch sees the old watermark and the old partitions or the new ones.

Why weeks, not days: PostgreSQL has no global index on a partitioned table, and dedup is by
``event_id`` alone (a producer's retry of an event without ``ts`` carries a new ``ts``), so the
ranker's duplicate lookup probes every partition. Measured (5,000 ids, 400k rows, PostgreSQL
15 on the loaded 2-core box): unpartitioned 43-49 ms, 6 weekly partitions 100-116 ms, 38 daily
partitions 465-540 ms. Weeks keep ~6-7 probes per id for a 30-day horizon at the price of
keeping up to one more week of rows than the horizon.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    DbConnection = asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]

logger = logging.getLogger(__name__)

LOCK_ID = 0x706F6470  # "podp": partition maintenance (exclusive) vs ranker batches (shared)


def lock_keys(parameter: int) -> str:
    """The advisory lock's two keys, the first (:data:`LOCK_ID`) taken from ``$parameter``,
    the second the schema, so schemas sharing a database (tests, benchmarks) never wait for
    each other's maintenance."""
    return f"${parameter}::int4, hashtext(current_schema())"


LOCK_KEYS = lock_keys(1)
"""The advisory lock's keys with :data:`LOCK_ID` as the statement's first parameter."""
PARTITION_WIDTH = timedelta(days=7)
WEEKS_AHEAD = 3
"""Weeks created after the current one, so a missed daily run or two changes nothing."""
PRUNE_GRACE = timedelta(days=1)
"""Rows are kept this long past the horizon: an event ingest accepted at the horizon's edge is
still applied (not dead-lettered) if it reaches the ranker within this time."""
LOCK_TIMEOUT = "5s"
"""How long maintenance waits for a table lock (a long backup holds one) before giving up:
ranker batches queue behind it meanwhile. ``podium prune`` is safe to run again."""
DEFAULT_PARTITION = "score_events_default"
_WEEK_NAME = re.compile(r"^score_events_w(\d{8})$")


@dataclass
class MaintenanceReport:
    """What one run did (``podium prune`` prints it)."""

    created: list[str] = field(default_factory=list)
    moved_rows: int = 0
    dropped: list[str] = field(default_factory=list)
    deleted_default_rows: int = 0
    pruned_before: datetime | None = None
    kept: list[str] = field(default_factory=list)


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of ``moment``'s week: the lower bound of its partition."""
    day = moment.astimezone(UTC).date()
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


def partition_name(start: datetime) -> str:
    """The name of the week partition starting at ``start``."""
    return f"score_events_w{start:%Y%m%d}"


def _start_of(name: str) -> datetime | None:
    found = _WEEK_NAME.match(name)
    if found is None:
        return None
    day = date(int(found[1][:4]), int(found[1][4:6]), int(found[1][6:]))
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def held_shared(parameter: int) -> str:
    """The SQL expression that holds the partitions steady for the caller's transaction: the
    shared form of maintenance's lock, its first key taken from ``$parameter``
    (:data:`LOCK_ID`).

    Every ranker batch evaluates it (``services/ranker/repository.py`` ``begin_batch``) before
    it reads the watermark (:data:`PRUNED_BEFORE_SQL`) and looks up event ids: no maintenance
    can drop rows (or raise the watermark) until the batch commits.
    """
    return f"pg_advisory_xact_lock_shared({lock_keys(parameter)})"


PRUNED_BEFORE_SQL = "SELECT pruned_before FROM score_events_pruned"
"""The watermark: event rows older than it may have been dropped."""


async def week_partitions(connection: DbConnection) -> dict[str, datetime]:
    """The week partitions of ``score_events`` in the current schema, by name."""
    rows = await connection.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'score_events'::regclass"
    )
    found = {row["relname"]: _start_of(row["relname"]) for row in rows}
    return {name: start for name, start in found.items() if start is not None}


async def maintain_partitions(
    connection: DbConnection,
    *,
    horizon: timedelta,
    now: datetime,
    prune: bool,
    timeout_s: float | None = None,
) -> MaintenanceReport:
    """Create the coming weeks and, with ``prune``, drop the weeks beyond the horizon.

    One transaction under the exclusive maintenance lock: concurrent or repeated runs
    serialise and each finds the work already done (idempotent). ``timeout_s`` bounds each
    statement instead of the connection's command timeout: moving or deleting the DEFAULT
    partition's rows after migration 0005 takes as long as the table is big.
    """
    report = MaintenanceReport()
    async with connection.transaction():
        await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        if timeout_s is not None:
            await connection.execute(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}")
        await connection.execute(f"SELECT pg_advisory_xact_lock({LOCK_KEYS})", LOCK_ID)
        watermark: datetime = await connection.fetchval(
            "SELECT pruned_before FROM score_events_pruned"
        )
        if prune:
            cutoff = week_start(now - horizon - PRUNE_GRACE)
            if watermark < cutoff:
                watermark = cutoff
                await connection.execute(
                    "UPDATE score_events_pruned SET pruned_before = $1", cutoff
                )
            report.pruned_before = watermark
            for name, start in sorted((await week_partitions(connection)).items()):
                if start + PARTITION_WIDTH <= watermark:
                    await connection.execute(f"ALTER TABLE score_events DETACH PARTITION {name}")
                    await connection.execute(f"DROP TABLE {name}")
                    report.dropped.append(name)
            status = await connection.execute(
                f"DELETE FROM {DEFAULT_PARTITION} WHERE event_ts < $1",  # noqa: S608 (a constant)
                watermark,
                timeout=timeout_s,
            )
            report.deleted_default_rows = int(status.split()[-1])
            # the verdicts of refused scores go with the event rows of their time
            await connection.execute(
                "DELETE FROM refused_events WHERE event_ts < $1", watermark, timeout=timeout_s
            )
        existing = await week_partitions(connection)
        first = week_start(max(watermark, now - horizon - PRUNE_GRACE))
        last = week_start(now) + WEEKS_AHEAD * PARTITION_WIDTH
        start = first
        while start <= last:
            name = partition_name(start)
            if name not in existing:
                report.moved_rows += await _create_week(connection, name, start, timeout_s)
                report.created.append(name)
            start += PARTITION_WIDTH
        report.kept = sorted(await week_partitions(connection))
    if report.created or report.dropped or report.deleted_default_rows:
        logger.info(
            "score_events partitions: created %s, dropped %s, moved %d row(s) out of and"
            " deleted %d from the default partition",
            report.created,
            report.dropped,
            report.moved_rows,
            report.deleted_default_rows,
        )
    return report


async def _create_week(
    connection: DbConnection, name: str, start: datetime, timeout_s: float | None
) -> int:
    """Create and attach one week, first moving its rows out of the DEFAULT partition
    (attaching refuses while the DEFAULT partition holds rows of the new range)."""
    end = start + PARTITION_WIDTH
    await connection.execute(
        f"CREATE TABLE {name} (LIKE score_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    moved = await connection.execute(
        f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION}"  # noqa: S608 (names are ours)
        " WHERE event_ts >= $1 AND event_ts < $2 RETURNING *)"
        f" INSERT INTO {name} SELECT * FROM moved",
        start,
        end,
        timeout=timeout_s,
    )
    await connection.execute(
        f"ALTER TABLE score_events ATTACH PARTITION {name}"
        f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')",
        timeout=timeout_s,
    )
    return int(moved.split()[-1])
