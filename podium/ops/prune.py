"""``podium prune``: bound ``score_events`` to the dedup horizon (issue #18).

Creates the coming weekly partitions and detaches and drops the weeks entirely older than
``PODIUM_DEDUP_HORIZON_DAYS`` (plus a day's grace), in one transaction under an advisory lock
(``shared/event_partitions.py``), so running it concurrently or repeatedly is safe. Run it
daily (the Helm chart's ``prune`` CronJob).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.db import connect
from shared.event_partitions import MaintenanceReport, maintain_partitions
from shared.settings import CommonSettings

MAINTENANCE_TIMEOUT_S = 3600.0
"""Longest statement of a run: the first run after migration 0005 moves the recent rows out of
the DEFAULT partition and deletes the old ones, as long as the table is big (the chart's
CronJob gives a run 1,800 s; raise both for a very large table)."""


async def prune(settings: CommonSettings, now: datetime | None = None) -> MaintenanceReport:
    """One maintenance run against ``settings``' schema, judged at ``now`` (default: now)."""
    connection = await connect(settings)
    try:
        return await maintain_partitions(
            connection,
            horizon=timedelta(days=settings.dedup_horizon_days),
            now=now or datetime.now(UTC),
            prune=True,
            timeout_s=MAINTENANCE_TIMEOUT_S,
        )
    finally:
        await connection.close()


def describe(report: MaintenanceReport) -> list[str]:
    """The report as the lines ``podium prune`` prints."""
    pruned = report.pruned_before.isoformat() if report.pruned_before else "(unchanged)"
    return [
        f"event rows before {pruned} are pruned",
        f"dropped {len(report.dropped)} partition(s): {', '.join(report.dropped) or '-'}",
        f"created {len(report.created)} partition(s): {', '.join(report.created) or '-'}",
        f"moved {report.moved_rows} row(s) out of the default partition,"
        f" deleted {report.deleted_default_rows} from it",
        f"week partitions now: {', '.join(report.kept) or '-'}",
    ]
