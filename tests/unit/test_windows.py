"""Period labels per reset schedule and time zone."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.schemas.competition import ResetSchedule
from shared.windows import is_valid_window, period_end, period_label, resolve_window, windows_for


def test_labels() -> None:
    moment = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert period_label(ResetSchedule.DAILY, moment, "UTC") == "2026-11-25"
    assert period_label(ResetSchedule.WEEKLY, moment, "UTC") == "2026-W48"
    assert period_label(ResetSchedule.MONTHLY, moment, "UTC") == "2026-11"
    assert period_label(ResetSchedule.NONE, moment, "UTC") is None


def test_time_zone_moves_the_day() -> None:
    late_utc = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert period_label(ResetSchedule.DAILY, late_utc, "UTC") == "2026-11-25"
    assert period_label(ResetSchedule.DAILY, late_utc, "Asia/Tokyo") == "2026-11-26"
    assert period_label(ResetSchedule.DAILY, late_utc, "America/New_York") == "2026-11-25"


def test_iso_week_year_boundary() -> None:
    assert period_label(ResetSchedule.WEEKLY, datetime(2027, 1, 1, tzinfo=UTC), "UTC") == "2026-W53"
    assert (
        period_label(ResetSchedule.WEEKLY, datetime(2024, 12, 30, tzinfo=UTC), "UTC") == "2025-W01"
    )


def test_period_end() -> None:
    moment = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert period_end(ResetSchedule.DAILY, moment, "UTC") == datetime(2026, 11, 26, tzinfo=UTC)
    assert period_end(ResetSchedule.WEEKLY, moment, "UTC") == datetime(2026, 11, 30, tzinfo=UTC)
    assert period_end(ResetSchedule.MONTHLY, moment, "UTC") == datetime(2026, 12, 1, tzinfo=UTC)
    december = datetime(2026, 12, 31, 10, tzinfo=UTC)
    assert period_end(ResetSchedule.MONTHLY, december, "UTC") == datetime(2027, 1, 1, tzinfo=UTC)


def test_windows_and_validation() -> None:
    moment = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert windows_for(ResetSchedule.NONE, moment, "UTC") == ["alltime"]
    assert windows_for(ResetSchedule.WEEKLY, moment, "UTC") == ["alltime", "2026-W48"]
    assert is_valid_window(ResetSchedule.WEEKLY, "2026-W48")
    assert not is_valid_window(ResetSchedule.WEEKLY, "2026-11-25")
    assert not is_valid_window(ResetSchedule.NONE, "2026-11")
    assert resolve_window(ResetSchedule.DAILY, "current", moment, "UTC") == "2026-11-25"
    assert resolve_window(ResetSchedule.NONE, "current", moment, "UTC") == "alltime"
