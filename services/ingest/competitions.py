"""Competition management (``admin`` scope): create, change, list, read and delete.

Every change refreshes this process's competition cache at once; other replicas pick it up
within ``competition_cache_ttl_s``.

A deletion (:func:`delete_competition`) is synchronous and ordered with the ranker by the
competition's lock rather than sent through the topic: under the lock no batch of the
competition is between its reads and its commit, and every batch after it finds no
competition, so its events (already in the topic, or accepted by a replica whose cache still
had the competition) are dead-lettered ``unknown_competition`` and write nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from services.ingest.access import authenticate_admin
from services.ingest.body import read_json_body
from services.ingest.context import IngestContext, ingest_context
from services.ingest.database import database_errors_mapped
from services.ingest.parameters import page_limit, path_identifier, query_identifier
from services.ingest.schemas import CompetitionPage
from shared import competitions as repository
from shared.competitions import COMPETITION_LOCK_SQL, COMPETITION_UNLOCK_SQL
from shared.errors import DependencyUnavailableError, NotFoundError, ValidationFailedError
from shared.http.errors import validation_details
from shared.http.responses import JSONResponse
from shared.schemas.change_message import ChangeMessage
from shared.schemas.competition import Competition, CompetitionCreate, CompetitionUpdate
from shared.teams import team_board_id

logger = logging.getLogger(__name__)

_NOT_NULL_ON_UPDATE = ("name", "visibility", "rank_style", "join_required")


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
    """Change name, end, max value, visibility, rank style or the tournament rules; ``null``
    clears ``ends_at``, ``max_value``, ``max_entrants`` and ``max_attempts``. A new rank
    style applies to every read and push from then on (within the services' competition
    cache TTL): ranks are styled when read, nothing is rewritten. New tournament rules apply
    to events applied from then on (as a new ``max_value`` does)."""
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
    limit = page_limit(request)
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


async def delete_competition(request: Request) -> Response:
    """Delete a competition, its standings and its Redis keys; 404 when it does not exist.

    The score and control events stay (audit, exact dedup; see
    :data:`shared.competitions._DELETED_TABLES`). Answered 204 once PostgreSQL and Redis no
    longer hold the competition; the notifiers are told on ``leaderboard-changes``.
    """
    context = ingest_context(request)
    _, decision = await authenticate_admin(request, context)
    competition_id = path_identifier(request, "competition_id")
    with database_errors_mapped():
        deleted = await _delete_everywhere(context, competition_id)
    context.competitions.invalidate(competition_id)
    if not deleted:
        raise NotFoundError(f"competition {competition_id!r} does not exist")
    logger.info("competition %s deleted", competition_id)
    await _announce_deletion(context, competition_id)
    return Response(status_code=204, headers=decision.headers())


async def _delete_everywhere(context: IngestContext, competition_id: str) -> bool:
    """PostgreSQL then Redis, under the competition lock (see the module docstring).

    Redis is cleared twice: inside the transaction (Redis down: the transaction rolls back
    and the answer is 503, nothing deleted) and after the commit, still under the lock: a
    rebuild by a reader (query, notifier: they rebuild from a pool, without the lock) whose
    PostgreSQL view predates the commit either fails its swap on the changed marker or is
    undone by the second pass (:meth:`LeaderboardStore.delete`).
    """
    async with context.pool.acquire() as connection:
        await connection.execute(COMPETITION_LOCK_SQL, competition_id)
        try:
            competition = await repository.get_competition(
                cast(asyncpg.Connection, connection), competition_id
            )
            boards = [competition_id]
            if competition is not None and competition.teams is not None:
                boards.append(team_board_id(competition_id))  # its team board goes with it
            try:
                async with connection.transaction():
                    if not await repository.delete_competition(connection, competition_id):
                        return False
                    for board in boards:
                        await context.store.delete(board)
            except (RedisError, OSError) as error:
                raise DependencyUnavailableError(
                    "Redis did not answer; the competition was not deleted"
                ) from error
            try:
                for board in boards:
                    await context.store.delete(board)
            except (RedisError, OSError):
                # PostgreSQL no longer has it and the first pass cleared Redis; only a
                # reader's rebuild racing this very moment could have left keys behind
                logger.exception("second Redis pass of deleting %s failed", competition_id)
            return True
        finally:
            with contextlib.suppress(Exception):  # a broken connection drops its locks too
                await connection.execute(COMPETITION_UNLOCK_SQL, competition_id)


async def _announce_deletion(context: IngestContext, competition_id: str) -> None:
    """Publish a ``deleted`` change message, so notifiers close the competition's sockets
    at once. Best effort: the deletion is done whatever Kafka says, and a notifier room that
    finds its competition gone at its next wake-up closes them too."""
    now = datetime.now(UTC)
    change = ChangeMessage(
        competition_id=competition_id,
        version=int(time.time() * 1000),
        emitted_at=now,
        windows=[],
        deleted=True,
    )
    try:
        async with asyncio.timeout(context.settings.kafka_request_timeout_s):
            await context.producer.send_and_wait(
                context.settings.topic_changes,
                key=competition_id.encode(),
                value=change.model_dump_json().encode(),
            )
    except Exception:
        logger.warning(
            "announcing the deletion of %s failed; sockets close at their room's next wake-up",
            competition_id,
            exc_info=True,
        )
