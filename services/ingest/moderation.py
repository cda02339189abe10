"""Admin actions on a user in a competition, sent as control events through the score topic.

They travel on ``score-events`` keyed by the competition id, like the user's scores, so the
ranker applies them in order with those scores: a removal cannot overtake a score posted
before it, and nothing posted after a ban slips in ahead of it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from services.ingest.access import authenticate_admin
from services.ingest.context import IngestContext, ingest_context
from services.ingest.metrics import CONTROL_EVENTS
from services.ingest.parameters import path_identifier
from services.ingest.publisher import OutgoingRecord
from services.ingest.schemas import ControlAccepted
from shared.auth import Principal
from shared.errors import NotFoundError
from shared.http.responses import JSONResponse
from shared.kafka_headers import origin_headers
from shared.logging import request_id_var
from shared.schemas.score_event import ControlAction, ControlEvent, encode_topic_message


async def publish_control(
    context: IngestContext,
    principal: Principal,
    competition_id: str,
    user_id: str,
    action: ControlAction,
) -> ControlAccepted:
    """Publish ``action`` on ``user_id`` in order with the competition's scores."""
    control = ControlEvent(
        event_id=f"ctl-{uuid.uuid4().hex}",
        action=action,
        competition_id=competition_id,
        user_id=user_id,
        received_at=datetime.now(UTC),
        requested_by=principal.subject,
    )
    await context.publisher.publish(
        [OutgoingRecord(key=competition_id, value=encode_topic_message(control))],
        origin_headers(request_id_var.get(), principal.subject),
    )
    CONTROL_EVENTS.labels(action.value).inc()
    return ControlAccepted(
        event_id=control.event_id, action=action, competition_id=competition_id, user_id=user_id
    )


async def _publish_control(request: Request, action: ControlAction) -> Response:
    context = ingest_context(request)
    principal, decision = await authenticate_admin(request, context)
    competition_id = path_identifier(request, "competition_id")
    user_id = path_identifier(request, "user_id")
    if await context.competitions.get(competition_id) is None:
        raise NotFoundError(f"competition {competition_id!r} does not exist")
    accepted = await publish_control(context, principal, competition_id, user_id, action)
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=202, headers=decision.headers()
    )


async def remove_user(request: Request) -> Response:
    """Erase a user's standings in every window of the competition (erasure, cheating)."""
    return await _publish_control(request, ControlAction.REMOVE_USER)


async def ban_user(request: Request) -> Response:
    """Erase a user's standings and keep their later events out of the competition."""
    return await _publish_control(request, ControlAction.BAN_USER)
