"""Tournament entrants: join (players for themselves), remove and list (``admin``).

A join is synchronous in PostgreSQL (:func:`shared.entrants.join`: capacity is exact under
concurrent joins on any number of replicas). A removal frees the place at once and erases
the user's standings and attempts through a ``remove_user`` control event, in order with the
competition's scores (like ``DELETE .../users/{uid}``); their later scores are refused
``not_joined`` until they join again.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.ingest.access import authenticate, authenticate_admin, limit_score_writer
from services.ingest.body import read_json_body
from services.ingest.context import ingest_context
from services.ingest.database import database_errors_mapped
from services.ingest.moderation import publish_control
from services.ingest.parameters import page_limit, path_identifier, query_identifier
from shared import entrants as repository
from shared.auth import Scope
from shared.errors import NotFoundError, PermissionDeniedError, ValidationFailedError
from shared.http.errors import validation_details
from shared.http.responses import JSONResponse
from shared.schemas.entrant import EntrantIn, EntrantPage
from shared.schemas.score_event import ControlAction


async def join_competition(request: Request) -> Response:
    """Join ``user_id`` to the competition: 201 when joined, 200 when already an entrant."""
    context = ingest_context(request)
    principal = await authenticate(request, context)
    competition_id = path_identifier(request, "competition_id")
    body = await read_json_body(request, max_bytes=context.settings.max_body_bytes)
    try:
        wanted = EntrantIn.model_validate(body)
    except ValidationError as error:
        raise ValidationFailedError(
            "the entrant does not match the schema", details=validation_details(error)
        ) from error
    if not principal.may_write_for(wanted.user_id):
        raise PermissionDeniedError(
            "the 'scores:write' scope joins only the token's own subject; others need"
            " 'scores:write:any' or 'admin'",
            details={"field": "user_id", "required_scope": Scope.SCORES_WRITE_ANY.value},
        )
    decision = await limit_score_writer(context, principal, events=1)
    with database_errors_mapped():
        entrant, created = await repository.join(
            context.pool, competition_id, wanted.user_id, datetime.now(UTC)
        )
    context.tournament_gate.joined(competition_id, wanted.user_id)
    return JSONResponse(
        entrant.model_dump(mode="json"),
        status_code=201 if created else 200,
        headers=decision.headers(),
    )


async def remove_entrant(request: Request) -> Response:
    """Remove an entrant (202: the place is free now, their standings go in topic order)."""
    context = ingest_context(request)
    principal, decision = await authenticate_admin(request, context)
    competition_id = path_identifier(request, "competition_id")
    user_id = path_identifier(request, "user_id")
    with database_errors_mapped():
        if not await repository.is_entrant(context.pool, competition_id, user_id):
            raise NotFoundError(f"{user_id!r} is no entrant of competition {competition_id!r}")
    # the erasure is published before the row goes: a publish that fails (503) leaves the
    # entrant in place, so the retry finds it and publishes again (a removal twice is one)
    accepted = await publish_control(
        context, principal, competition_id, user_id, ControlAction.REMOVE_USER
    )
    with database_errors_mapped():
        await repository.remove(context.pool, competition_id, user_id)
    context.tournament_gate.removed(competition_id, user_id)
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=202, headers=decision.headers()
    )


async def list_entrants(request: Request) -> Response:
    """The competition's entrants ordered by user id, a page at a time."""
    context = ingest_context(request)
    _, decision = await authenticate_admin(request, context)
    competition_id = path_identifier(request, "competition_id")
    limit = page_limit(request)
    after = query_identifier(request, "after")
    if await context.competitions.get(competition_id) is None:
        raise NotFoundError(f"competition {competition_id!r} does not exist")
    with database_errors_mapped():
        rows, total = await repository.page(context.pool, competition_id, after, limit + 1)
    page = EntrantPage(
        entrants=rows[:limit],
        total=total,
        next_after=rows[limit - 1].user_id if len(rows) > limit else None,
    )
    return JSONResponse(page.model_dump(mode="json"), headers=decision.headers())
