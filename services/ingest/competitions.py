"""Competition management (``admin`` scope): create, change, list and read competitions.

Every change refreshes this process's competition cache at once; other replicas pick it up
within ``competition_cache_ttl_s``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.ingest.access import authenticate_admin
from services.ingest.body import read_json_body
from services.ingest.context import ingest_context
from services.ingest.database import database_errors_mapped
from services.ingest.parameters import path_identifier, query_identifier, query_int
from services.ingest.schemas import CompetitionPage
from shared import competitions as repository
from shared.errors import NotFoundError, ValidationFailedError
from shared.http.errors import validation_details
from shared.http.responses import JSONResponse
from shared.schemas.competition import Competition, CompetitionCreate, CompetitionUpdate

PAGE_DEFAULT = 50
PAGE_MAX = 200
_NOT_NULL_ON_UPDATE = ("name", "visibility", "rank_style")


def _competition_json(competition: Competition) -> dict[str, Any]:
    return competition.model_dump(mode="json")


def _schema_error(error: ValidationError) -> ValidationFailedError:
    return ValidationFailedError(
        "the competition does not match the schema", details=validation_details(error)
    )


async def create_competition(request: Request) -> Response:
    """Create a competition; 409 when the id is taken."""
    context = ingest_context(request)
    _, decision = await authenticate_admin(request, context)
    body = await read_json_body(request, max_bytes=context.settings.max_body_bytes)
    try:
        wanted = CompetitionCreate.model_validate(body)
    except ValidationError as error:
        raise _schema_error(error) from error
    with database_errors_mapped():
        created = await repository.create_competition(context.pool, wanted)
    context.competitions.put(created)
    headers = {**decision.headers(), "Location": f"/api/v1/competitions/{created.id}"}
    return JSONResponse(_competition_json(created), status_code=201, headers=headers)


async def update_competition(request: Request) -> Response:
    """Change name, end, max value, visibility or rank style; ``null`` clears ``ends_at`` and
    ``max_value``. A new rank style applies to every read and push from then on (within the
    services' competition cache TTL): ranks are styled when read, nothing is rewritten."""
    context = ingest_context(request)
    _, decision = await authenticate_admin(request, context)
    competition_id = path_identifier(request, "competition_id")
    body = await read_json_body(request, max_bytes=context.settings.max_body_bytes)
    try:
        update = CompetitionUpdate.model_validate(body)
    except ValidationError as error:
        raise _schema_error(error) from error
    _reject_nulls(update)
    with database_errors_mapped():
        current = await repository.get_competition(context.pool, competition_id)
        if current is None:
            raise NotFoundError(f"competition {competition_id!r} does not exist")
        if (
            "ends_at" in update.model_fields_set
            and update.ends_at is not None
            and current.starts_at is not None
            and update.ends_at <= current.starts_at
        ):
            raise ValidationFailedError(
                "ends_at must be after starts_at",
                details=[
                    {
                        "field": "ends_at",
                        "message": "must be after starts_at",
                        "type": "value_error",
                    }
                ],
            )
        updated = await repository.update_competition(context.pool, competition_id, update)
    context.competitions.invalidate(competition_id)
    if updated is None:
        raise NotFoundError(f"competition {competition_id!r} does not exist")
    context.competitions.put(updated)
    return JSONResponse(_competition_json(updated), headers=decision.headers())


def _reject_nulls(update: CompetitionUpdate) -> None:
    problems = [
        {"field": name, "message": "must not be null", "type": "null_forbidden"}
        for name in _NOT_NULL_ON_UPDATE
        if name in update.model_fields_set and getattr(update, name) is None
    ]
    if problems:
        raise ValidationFailedError("the change does not match the schema", details=problems)


async def list_competitions(request: Request) -> Response:
    """Competitions ordered by id, public and private, a page at a time."""
    context = ingest_context(request)
    _, decision = await authenticate_admin(request, context)
    limit = query_int(request, "limit", default=PAGE_DEFAULT, minimum=1, maximum=PAGE_MAX)
    after = query_identifier(request, "after")
    with database_errors_mapped():
        rows = await repository.list_competitions(
            context.pool, after_id=after, limit=limit + 1, include_private=True
        )
    page = CompetitionPage(
        competitions=rows[:limit], next_after=rows[limit - 1].id if len(rows) > limit else None
    )
    return JSONResponse(page.model_dump(mode="json"), headers=decision.headers())


async def get_competition(request: Request) -> Response:
    """One competition; 404 when it does not exist."""
    context = ingest_context(request)
    _, decision = await authenticate_admin(request, context)
    competition_id = path_identifier(request, "competition_id")
    with database_errors_mapped():
        competition = await repository.get_competition(context.pool, competition_id)
    if competition is None:
        raise NotFoundError(f"competition {competition_id!r} does not exist")
    return JSONResponse(_competition_json(competition), headers=decision.headers())
