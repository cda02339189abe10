"""The ranker's pure rules: operators, dead-letter reasons, in-batch ordering of controls."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.ranker.planner import IncomingEvent, StoredState, plan_batch
from services.ranker.rules import (
    DeadLetterReason,
    Standing,
    combine,
    period_of,
    rejection_reason,
)
from shared.schemas.competition import (
    Competition,
    Operator,
    ResetSchedule,
    SortOrder,
    Visibility,
)
from shared.schemas.score_event import ControlAction, ControlEvent, ScoreEvent
from shared.windows import ALLTIME, period_end, period_label

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)


def competition(**fields: object) -> Competition:
    base: dict[str, object] = {
        "id": "c1", "name": "c1", "sort_order": SortOrder.DESC, "operator": Operator.BEST,
        "reset": ResetSchedule.NONE, "timezone": "UTC", "starts_at": None, "ends_at": None,
        "max_value": None, "visibility": Visibility.PUBLIC, "created_at": T0, "updated_at": T0,
    }  # fmt: skip
    return Competition.model_validate({**base, **fields})


def score(event_id: str, user: str, value: float, ts: datetime, **fields: object) -> ScoreEvent:
    return ScoreEvent.model_validate(
        {"event_id": event_id, "competition_id": "c1", "user_id": user, "value": value,
         "ts": ts, "received_at": fields.pop("received_at", ts), **fields}
    )  # fmt: skip


def control(event_id: str, user: str, action: ControlAction) -> ControlEvent:
    return ControlEvent(
        event_id=event_id, action=action, competition_id="c1", user_id=user, received_at=T0
    )


def fold(operator: Operator, order: SortOrder, events: list[tuple[float, datetime]]) -> Standing:
    standing = None
    for value, ts in events:
        standing = combine(operator, order, standing, value, ts)
    assert standing is not None
    return standing


def test_best_honours_sort_order_and_keeps_the_earliest_time_of_a_tie() -> None:
    later, earlier = T0 + timedelta(minutes=5), T0
    desc = fold(Operator.BEST, SortOrder.DESC, [(5, later), (3, T0), (5, earlier)])
    assert (desc.score, desc.reached_at) == (5, earlier)
    asc = fold(Operator.BEST, SortOrder.ASC, [(5, later), (3, later), (4, T0)])
    assert (asc.score, asc.reached_at) == (3, later)


def test_latest_takes_the_latest_event_time_and_the_later_arrival_on_equal_times() -> None:
    out_of_order = fold(Operator.LATEST, SortOrder.DESC, [(7, T0 + timedelta(1)), (9, T0)])
    assert out_of_order.score == 7
    equal_times = fold(Operator.LATEST, SortOrder.DESC, [(7, T0), (2, T0)])
    assert equal_times.score == 2


def test_sum_adds_and_is_reached_at_the_latest_event_time() -> None:
    total = fold(Operator.SUM, SortOrder.DESC, [(1.5, T0 + timedelta(hours=1)), (2.0, T0)])
    assert (total.score, total.reached_at) == (3.5, T0 + timedelta(hours=1))


@pytest.mark.parametrize(
    ("fields", "event_fields", "reason"),
    [
        ({"max_value": 10.0}, {"value": 10.5}, DeadLetterReason.BAD_VALUE),
        ({"starts_at": T0}, {"ts": T0 - timedelta(microseconds=1)}, "outside"),
        ({"ends_at": T0}, {"ts": T0}, "outside"),
        ({}, {"ts": datetime(1969, 12, 31, tzinfo=UTC)}, DeadLetterReason.BAD_TIME),
        # daily period of T0 ends at midnight; grace 3600 s is the last accepted arrival
        (
            {"reset": ResetSchedule.DAILY},
            {"received_at": T0.replace(hour=0) + timedelta(days=1, hours=1, microseconds=1)},
            DeadLetterReason.LATE,
        ),
        (
            {"reset": ResetSchedule.DAILY},
            {"received_at": T0.replace(hour=0) + timedelta(days=1, hours=1)},
            None,
        ),
        ({"max_value": 10.0}, {"value": 10.0}, None),
    ],
)
def test_rejection_reasons(
    fields: dict[str, object], event_fields: dict[str, object], reason: object
) -> None:
    if reason == "outside":
        reason = DeadLetterReason.OUTSIDE_COMPETITION
    arguments: dict[str, object] = {"value": 1.0, "ts": T0, **event_fields}
    event = score("e1", "u1", **arguments)  # type: ignore[arg-type]
    assert rejection_reason(event, competition(**fields), grace_s=3600) == reason


def test_unknown_competition_is_rejected() -> None:
    assert rejection_reason(score("e", "u", 1, T0), None, 0) is DeadLetterReason.UNKNOWN_COMPETITION


def _incoming(*messages: ScoreEvent | ControlEvent) -> list[IncomingEvent]:
    return [
        IncomingEvent(0, offset, b"c1", b"", message) for offset, message in enumerate(messages)
    ]


def _state(**fields: object) -> StoredState:
    base: dict[str, object] = {
        "competitions": {"c1": competition(operator=Operator.SUM)},
        "known_score_ids": set(), "known_control_ids": set(), "banned": set(), "standings": {},
    }  # fmt: skip
    return StoredState(**{**base, **fields})  # type: ignore[arg-type]


def test_controls_apply_in_order_with_scores() -> None:
    plan = plan_batch(
        _incoming(
            score("e1", "u1", 5, T0),
            control("k1", "u1", ControlAction.REMOVE_USER),
            score("e2", "u1", 2, T0),  # counts afresh after the removal
            score("e3", "u2", 4, T0),
            control("k2", "u2", ControlAction.BAN_USER),
            score("e4", "u2", 9, T0),  # banned
            score("e3", "u2", 4, T0),  # a duplicate of an applied event, even after the ban
        ),
        _state(),
        grace_s=0,
    )
    assert plan.final == {("c1", "alltime", "u1"): Standing(2, T0, T0)}
    assert plan.deletes == set()  # u2 never reached PostgreSQL
    assert [(d.event.offset, d.reason) for d in plan.dead_letters] == [(5, DeadLetterReason.BANNED)]
    assert plan.duplicates == 1
    assert plan.new_bans == [("c1", "u2")]


def test_a_replayed_removal_does_not_erase_later_scores() -> None:
    stored = {("c1", "alltime", "u1"): Standing(2, T0, T0)}
    plan = plan_batch(
        _incoming(
            score("e1", "u1", 5, T0),
            control("k1", "u1", ControlAction.REMOVE_USER),
            score("e2", "u1", 2, T0),
        ),
        _state(known_score_ids={"e1", "e2"}, known_control_ids={"k1"}, standings=stored),
        grace_s=0,
    )
    assert plan.duplicates == 3
    assert plan.upserts == {}
    assert plan.deletes == set()
    assert plan.final == stored  # Redis still gets the absolute standing (idempotent replay)


@pytest.mark.parametrize(
    "zone", ["Europe/Paris", "America/Santiago", "Asia/Tehran", "Pacific/Chatham"]
)
@pytest.mark.parametrize(
    "reset", [ResetSchedule.DAILY, ResetSchedule.WEEKLY, ResetSchedule.MONTHLY]
)
def test_memoized_periods_equal_the_windows_module(reset: ResetSchedule, zone: str) -> None:
    # moments around each local midnight and DST change of a year, in random order (the memo
    # is per UTC second, so a boundary second must never borrow its neighbour's period)
    rng = random.Random(f"{reset}{zone}")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = []
    for hours in range(0, 366 * 24, 7):
        moment = start + timedelta(hours=hours)
        local_midnight = moment.astimezone(ZoneInfo(zone)).replace(hour=0, minute=0, second=0)
        for edge_s in (-1, 0, 1):
            for micros in (0, 999_999):
                moments.append(local_midnight + timedelta(seconds=edge_s, microseconds=micros))
        moments.append(moment + timedelta(microseconds=rng.randrange(10**6)))
    rng.shuffle(moments)
    for moment in moments:
        windows, ends = period_of(reset, moment, zone)
        assert windows == [ALLTIME, period_label(reset, moment, zone)]
        assert ends == period_end(reset, moment, zone)
