"""The dedup horizon's pure rules (issue #18): the ranker's verdict, ingest's admission and
the weekly partition arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.ingest.admission import Admission
from services.ranker.planner import BatchPlan, IncomingEvent, StoredState, plan_batch
from services.ranker.rules import DeadLetterReason
from shared.auth import Principal, Scope
from shared.event_partitions import PARTITION_WIDTH, partition_name, week_start
from shared.schemas.competition import Competition, Operator, ResetSchedule, SortOrder, Visibility
from shared.schemas.score_event import ScoreEvent, ScoreEventIn

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)  # a Wednesday
HORIZON = timedelta(days=30)
COMPETITION = Competition.model_validate(
    {"id": "c1", "name": "c1", "sort_order": SortOrder.DESC, "operator": Operator.SUM,
     "reset": ResetSchedule.NONE, "timezone": "UTC", "starts_at": None, "ends_at": None,
     "max_value": None, "visibility": Visibility.PUBLIC, "created_at": T0, "updated_at": T0}
)  # fmt: skip


def score(event_id: str, ts: datetime, received_at: datetime) -> ScoreEvent:
    return ScoreEvent(
        event_id=event_id,
        competition_id="c1",
        user_id="u1",
        value=1,
        ts=ts,
        received_at=received_at,
    )


def plan(
    *messages: ScoreEvent, known: set[str] | None = None, pruned_before: datetime
) -> BatchPlan:
    state = StoredState(
        competitions={"c1": COMPETITION},
        known_score_ids=known or set(),
        known_control_ids=set(),
        banned=set(),
        standings={},
        pruned_before=pruned_before,
    )
    events = [IncomingEvent(0, i, b"c1", b"", message) for i, message in enumerate(messages)]
    return plan_batch(events, state, grace_s=0, horizon=HORIZON)


def test_the_ranker_judges_the_horizon_by_received_at_and_the_watermark() -> None:
    result = plan(
        score("edge", T0 - HORIZON, T0),  # exactly at the horizon: applies
        score("old", T0 - HORIZON - timedelta(microseconds=1), T0),
        score("waited", T0 - 2 * HORIZON, T0 - 2 * HORIZON),  # accepted long ago, fine
        pruned_before=T0 - 2 * HORIZON,
    )
    assert [m.event_id for m in result.new_scores] == ["edge", "waited"]
    assert [(d.event.offset, d.reason) for d in result.dead_letters] == [
        (1, DeadLetterReason.BEYOND_DEDUP_HORIZON)
    ]


def test_an_event_older_than_the_watermark_is_dead_lettered_even_if_its_id_is_known() -> None:
    """Its row may be gone: counting it a duplicate only when the row survived would make the
    verdict depend on what was pruned; it never applies either way."""
    waited = score("e1", T0 - timedelta(days=40), T0 - timedelta(days=40))
    for known in (set(), {"e1"}):
        result = plan(waited, known=known, pruned_before=T0 - timedelta(days=31))
        assert (result.new_scores, result.duplicates) == ([], 0)
        assert [d.reason for d in result.dead_letters] == [DeadLetterReason.BEYOND_DEDUP_HORIZON]


def test_ingest_refuses_a_ts_older_than_the_horizon_and_names_the_field() -> None:
    principal = Principal(subject="game", scopes=frozenset({Scope.SCORES_WRITE_ANY.value}))
    admission = Admission(principal, T0, horizon_days=30)

    def event(ts: datetime | None) -> ScoreEventIn:
        return ScoreEventIn(event_id="e", competition_id="c1", user_id="u", value=1, ts=ts)

    refused = admission.check(event(T0 - HORIZON - timedelta(seconds=1)), COMPETITION)
    assert refused is not None
    assert (refused.reason, refused.field) == ("beyond_dedup_horizon", "ts")
    assert admission.check(event(T0 - HORIZON), COMPETITION) is None
    assert admission.check(event(None), COMPETITION) is None  # ts = the receive time


def test_weeks_start_on_monday_utc() -> None:
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    assert week_start(T0) == monday
    assert week_start(monday) == monday
    assert week_start(monday - timedelta(microseconds=1)) == monday - PARTITION_WIDTH
    assert partition_name(monday) == "score_events_w20261123"
