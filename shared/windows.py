"""Leaderboard windows: ``alltime`` plus one period per reset schedule.

Period labels are computed from the event time in the competition's time zone:
daily ``2026-11-25``, weekly (ISO week) ``2026-W48``, monthly ``2026-11``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.schemas.competition import ResetSchedule

ALLTIME = "alltime"
CURRENT = "current"

_LABEL_PATTERNS = {
    ResetSchedule.DAILY: re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    ResetSchedule.WEEKLY: re.compile(r"^\d{4}-W\d{2}$"),
    ResetSchedule.MONTHLY: re.compile(r"^\d{4}-\d{2}$"),
}


def period_label(reset: ResetSchedule, moment: datetime, timezone: str) -> str | None:
    """The period ``moment`` falls in, or None for competitions without a reset schedule."""
    if reset is ResetSchedule.NONE:
        return None
    local = moment.astimezone(ZoneInfo(timezone))
    if reset is ResetSchedule.DAILY:
        return local.strftime("%Y-%m-%d")
    if reset is ResetSchedule.WEEKLY:
        iso = local.isocalendar()
        return f"{iso.year:04d}-W{iso.week:02d}"
    return local.strftime("%Y-%m")


def period_end(reset: ResetSchedule, moment: datetime, timezone: str) -> datetime | None:
    """When the period containing ``moment`` ends (an aware datetime), or None."""
    if reset is ResetSchedule.NONE:
        return None
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if reset is ResetSchedule.DAILY:
        naive_end = day_start.replace(tzinfo=None) + timedelta(days=1)
    elif reset is ResetSchedule.WEEKLY:
        naive_end = day_start.replace(tzinfo=None) + timedelta(days=7 - local.weekday())
    else:
        first = day_start.replace(day=1, tzinfo=None)
        naive_end = (first + timedelta(days=32)).replace(day=1)
    return naive_end.replace(tzinfo=zone)


def previous_periods(
    reset: ResetSchedule, moment: datetime, timezone: str, count: int
) -> list[str]:
    """The labels of the ``count`` periods before the one containing ``moment``, newest
    first (none without a reset schedule). Each is found from the local midnight that starts
    the period after it, one day back, so DST changes and month lengths need no arithmetic."""
    if reset is ResetSchedule.NONE:
        return []
    zone = ZoneInfo(timezone)
    local = moment.astimezone(zone)
    labels = []
    for _ in range(count):
        day = local.replace(hour=12, minute=0, second=0, microsecond=0, tzinfo=None)
        if reset is ResetSchedule.WEEKLY:
            day -= timedelta(days=local.weekday())
        elif reset is ResetSchedule.MONTHLY:
            day = day.replace(day=1)
        # noon of the period's first day, one day back: inside the previous period
        local = (day - timedelta(days=1)).replace(tzinfo=zone)
        labels.append(period_label(reset, local, timezone) or "")
    return labels


def windows_for(reset: ResetSchedule, moment: datetime, timezone: str) -> list[str]:
    """Every window an event at ``moment`` counts toward: ``alltime`` and maybe a period."""
    label = period_label(reset, moment, timezone)
    return [ALLTIME] if label is None else [ALLTIME, label]


def is_valid_window(reset: ResetSchedule, window: str) -> bool:
    """Whether ``window`` (``alltime``, ``current`` or a label) can exist for ``reset``."""
    if window in (ALLTIME, CURRENT):
        return True
    pattern = _LABEL_PATTERNS.get(reset)
    return bool(pattern and pattern.match(window))


def resolve_window(reset: ResetSchedule, window: str, now: datetime, timezone: str) -> str:
    """Turn ``current`` into today's period label (``alltime`` when there is no reset)."""
    if window != CURRENT:
        return window
    return period_label(reset, now, timezone) or ALLTIME
