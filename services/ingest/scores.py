"""``POST /api/v1/scores`` and ``POST /api/v1/scores/batch``: validate, admit, publish, 202."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.ingest.access import authenticate, limit_score_writer, require_score_writer
from services.ingest.admission import Admission, Rejection
from services.ingest.body import read_json_body
from services.ingest.context import ingest_context
from services.ingest.database import database_errors_mapped
from services.ingest.metrics import EVENTS_ACCEPTED, EVENTS_REJECTED
from services.ingest.publisher import OutgoingRecord
from services.ingest.records import encode_score, rfc3339
from services.ingest.schemas import EventResult
from services.ingest.tournament_gate import applies_to
from shared.auth import Principal
from shared.errors import EventRejectedError, PermissionDeniedError, ValidationFailedError
from shared.http.errors import validation_details
from shared.http.responses import EncodedJSONResponse, JSONResponse
from shared.kafka_headers import origin_headers
from shared.logging import request_id_var
from shared.schemas.competition import Competition
from shared.schemas.score_event import ScoreEventIn

VALIDATION_FAILED = "validation_failed"
_EVENT_LIST: TypeAdapter[list[ScoreEventIn]] = TypeAdapter(list[ScoreEventIn])


def _headers(principal: Principal) -> list[tuple[str, bytes]]:
    return origin_headers(request_id_var.get(), principal.subject)


async def post_score(request: Request) -> Response:
    """Accept one score event once the broker acknowledged it."""
    context = ingest_context(request)
    principal = await authenticate(request, context)
    require_score_writer(principal)
    decision = await limit_score_writer(context, principal, events=1)
    body = await read_json_body(request, max_bytes=context.settings.max_body_bytes)
    try:
        event = ScoreEventIn.model_validate(body)
    except ValidationError as error:
        EVENTS_REJECTED.labels(VALIDATION_FAILED).inc()
        raise ValidationFailedError(
            "the event does not match the schema", details=validation_details(error)
        ) from error
    received_at = datetime.now(UTC)
    competition = await context.competitions.get(event.competition_id)
    rejection = Admission(principal, received_at, context.settings.dedup_horizon_days).check(
        event, competition
    )
    if rejection is None and competition is not None and applies_to(competition):
        with database_errors_mapped():
            [rejection] = await context.tournament_gate.refusals(
                [(event, competition)], received_at
            )
    if rejection is not None:
        EVENTS_REJECTED.labels(rejection.reason).inc()
        details = {"reason": rejection.reason, "field": rejection.field}
        if rejection.reason == "forbidden":
            raise PermissionDeniedError(rejection.message, details=details)
        raise EventRejectedError(rejection.reason, rejection.message, details=details)
    received = rfc3339(received_at)
    # every field was validated by ScoreEventIn: encoded directly, no second model
    record = OutgoingRecord(event.competition_id, encode_score(event, received))
    await context.publisher.publish([record], _headers(principal))
    EVENTS_ACCEPTED.inc()
    # the ScoreAccepted shape, built directly (as the batch's results are)
    accepted = {"status": "accepted", "event_id": event.event_id, "received_at": received}
    return EncodedJSONResponse(orjson.dumps(accepted), 202, decision.raw_headers())


def _batch_items(body: Any, max_events: int) -> list[Any]:
    """The raw items of a batch envelope; 422 naming the problem when the envelope is wrong."""

    def invalid(field: str, message: str, kind: str) -> ValidationFailedError:
        return ValidationFailedError(
            "the batch does not match the schema",
            details=[{"field": field, "message": message, "type": kind}],
        )

    if not isinstance(body, dict):
        raise invalid("body", "must be an object with an 'events' list", "dict_type")
    extra = sorted(set(body) - {"events"})
    if extra:
        raise invalid(extra[0], "extra fields are not permitted", "extra_forbidden")
    items = body.get("events")
    if items is None:
        raise invalid("events", "field required", "missing")
    if not isinstance(items, list):
        raise invalid("events", "must be a list", "list_type")
    if not items:
        raise invalid("events", "must hold at least 1 event", "too_short")
    if len(items) > max_events:
        raise invalid("events", f"must hold at most {max_events} events", "too_long")
    return items


def _validate_items(
    items: list[Any], results: list[dict[str, Any] | None]
) -> list[tuple[int, ScoreEventIn]]:
    """The items that are valid ScoreEventIn, by index; each invalid one gets its result."""
    try:
        # the common case, every item valid, in one pydantic-core call (no per-item overhead)
        return list(enumerate(_EVENT_LIST.validate_python(items)))
    except ValidationError:
        pass
    valid: list[tuple[int, ScoreEventIn]] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, ScoreEventIn.model_validate(item)))
        except ValidationError as error:
            problems = validation_details(error, prefix=("events", index))
            results[index] = _result(
                EventResult(
                    index=index,
                    event_id=_raw_event_id(item),
                    status="rejected",
                    reason=VALIDATION_FAILED,
                    field=problems[0]["field"],
                    message="the event does not match the schema",
                    details=list(problems),
                )
            )
    return valid


def _cost(body: Any) -> int:
    """Events a batch claims to hold (what a trusted server is charged), before validation."""
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        return len(body["events"])
    return 1


async def post_batch(request: Request) -> Response:
    """Accept a list of events; each gets its own result, and only good ones are published."""
    context = ingest_context(request)
    principal = await authenticate(request, context)
    require_score_writer(principal)
    body = await read_json_body(request, max_bytes=context.settings.max_body_bytes)
    decision = await limit_score_writer(context, principal, events=_cost(body))
    items = _batch_items(body, context.settings.ingest_batch_max_events)
    received_at = datetime.now(UTC)

    results: list[dict[str, Any] | None] = [None] * len(items)
    valid = _validate_items(items, results)
    competitions = await context.competitions.get_many({e.competition_id for _, e in valid})

    admission = Admission(principal, received_at, context.settings.dedup_horizon_days)
    received = rfc3339(received_at)
    admitted: list[tuple[int, ScoreEventIn]] = []
    gated: list[tuple[int, ScoreEventIn, Competition]] = []
    for index, event in valid:
        competition = competitions.get(event.competition_id)
        rejection = admission.check(event, competition)
        if rejection is not None:
            results[index] = _result(_rejected(index, event.event_id, rejection))
        elif competition is not None and applies_to(competition):
            gated.append((index, event, competition))
        else:
            admitted.append((index, event))
    if gated:
        with database_errors_mapped():
            refusals = await context.tournament_gate.refusals(
                [(event, competition) for _, event, competition in gated], received_at
            )
        for (index, event, _), refusal in zip(gated, refusals, strict=True):
            if refusal is None:
                admitted.append((index, event))
            else:
                results[index] = _result(_rejected(index, event.event_id, refusal))
        admitted.sort(key=lambda item: item[0])  # published in request order
    records = [
        OutgoingRecord(event.competition_id, encode_score(event, received)) for _, event in admitted
    ]
    await context.publisher.publish(records, _headers(principal))

    for index, event in admitted:
        # the accepted shape of EventResult, built directly: it is the common case
        results[index] = {"index": index, "event_id": event.event_id, "status": "accepted"}
    final = [result for result in results if result is not None]
    rejected = [result for result in final if result["status"] == "rejected"]
    EVENTS_ACCEPTED.inc(len(admitted))
    for result in rejected:
        EVENTS_REJECTED.labels(result["reason"]).inc()
    response = {
        "accepted": len(admitted),
        "rejected": len(rejected),
        "received_at": received,
        "results": final,
    }
    return JSONResponse(response, status_code=202, headers=decision.headers())


def _result(result: EventResult) -> dict[str, Any]:
    return result.model_dump(mode="json", exclude_none=True)


def _rejected(index: int, event_id: str, rejection: Rejection) -> EventResult:
    return EventResult(
        index=index,
        event_id=event_id,
        status="rejected",
        reason=rejection.reason,
        field=f"events.{index}.{rejection.field}",
        message=rejection.message,
    )


def _raw_event_id(item: Any) -> str | None:
    """The item's event_id when it is at least a short string, to help the caller match up."""
    if isinstance(item, dict):
        event_id = item.get("event_id")
        if isinstance(event_id, str) and len(event_id) <= 64:
            return event_id
    return None
