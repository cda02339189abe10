"""The ingest API: every route, declared once for both routing and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from services.ingest import competitions, entrants, moderation, scores
from services.ingest.parameters import PAGE_DEFAULT, PAGE_MAX
from services.ingest.schemas import (
    BatchAccepted,
    CompetitionPage,
    ControlAccepted,
    ScoreAccepted,
    ScoreBatchIn,
)
from shared.http.openapi import Operation, Parameter, build_openapi, error_responses
from shared.schemas.competition import Competition, CompetitionCreate, CompetitionUpdate
from shared.schemas.entrant import Entrant, EntrantIn, EntrantPage
from shared.schemas.identifiers import IDENTIFIER_PATTERN
from shared.schemas.score_event import ScoreEventIn

TITLE = "Podium ingest"
VERSION = "1.0.0"
_WRITE_SCOPES = ("scores:write", "scores:write:any")
_ADMIN = ("admin",)
_IDENTIFIER_SCHEMA = {"type": "string", "pattern": IDENTIFIER_PATTERN}
_COMPETITION_ID = Parameter(
    "competition_id", "path", "The competition's id.", schema=_IDENTIFIER_SCHEMA
)
_USER_ID = Parameter("user_id", "path", "The user's id.", schema=_IDENTIFIER_SCHEMA)
_ADMIN_ERRORS = error_responses(401, 403, 429, 503)
_PAGE_LIMIT = Parameter(
    "limit",
    "query",
    "Page size.",
    schema={"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT},
)

OPERATIONS: list[Operation] = [
    Operation(
        "POST",
        "/api/v1/scores",
        "Submit one score event",
        scores.post_score,
        request_model=ScoreEventIn,
        responses={
            202: ScoreAccepted,
            **error_responses(400, 401, 403, 413, 415, 422, 429, 503),
        },
        scopes=_WRITE_SCOPES,
        description="Answers 202 only after the broker acknowledged the event (acks=all).",
        tags=("scores",),
        direct=True,
    ),
    Operation(
        "POST",
        "/api/v1/scores/batch",
        "Submit a batch of score events",
        scores.post_batch,
        request_model=ScoreBatchIn,
        responses={
            202: BatchAccepted,
            **error_responses(400, 401, 403, 413, 415, 422, 429, 503),
        },
        scopes=_WRITE_SCOPES,
        description=(
            "Each event is validated and admitted on its own; the 202 lists a result per "
            "event and only accepted events are published. `scores:write:any` callers are "
            "charged one rate-limit token per event."
        ),
        tags=("scores",),
    ),
    Operation(
        "POST",
        "/api/v1/competitions",
        "Create a competition",
        competitions.create_competition,
        request_model=CompetitionCreate,
        responses={201: Competition, **_ADMIN_ERRORS, **error_responses(400, 409, 413, 415, 422)},
        scopes=_ADMIN,
        tags=("competitions",),
    ),
    Operation(
        "GET",
        "/api/v1/competitions",
        "List competitions (public and private)",
        competitions.list_competitions,
        parameters=(
            _PAGE_LIMIT,
            Parameter(
                "after", "query", "Continue after this id (`next_after`).", _IDENTIFIER_SCHEMA
            ),
        ),
        responses={200: CompetitionPage, **_ADMIN_ERRORS, **error_responses(400)},
        scopes=_ADMIN,
        tags=("competitions",),
    ),
    Operation(
        "GET",
        "/api/v1/competitions/{competition_id}",
        "Read a competition",
        competitions.get_competition,
        parameters=(_COMPETITION_ID,),
        responses={200: Competition, **_ADMIN_ERRORS, **error_responses(404, 422)},
        scopes=_ADMIN,
        tags=("competitions",),
    ),
    Operation(
        "PATCH",
        "/api/v1/competitions/{competition_id}",
        "Change a competition's name, end, max value, visibility, rank style or tournament rules",
        competitions.update_competition,
        request_model=CompetitionUpdate,
        parameters=(_COMPETITION_ID,),
        responses={
            200: Competition,
            **_ADMIN_ERRORS,
            **error_responses(400, 404, 413, 415, 422),
        },
        scopes=_ADMIN,
        tags=("competitions",),
    ),
    Operation(
        "DELETE",
        "/api/v1/competitions/{competition_id}",
        "Delete a competition, its standings and its leaderboards",
        competitions.delete_competition,
        parameters=(_COMPETITION_ID,),
        responses={
            204: "the competition, its standings and its Redis keys are gone",
            **_ADMIN_ERRORS,
            **error_responses(404, 422),
        },
        scopes=_ADMIN,
        description=(
            "Synchronous: ordered with the ranker by the competition's lock, so no event "
            "applies after it; later score posts for the id are refused "
            "`unknown_competition` (on other ingest replicas within "
            "`PODIUM_COMPETITION_CACHE_TTL_S`) and events already accepted are dead-lettered "
            "`unknown_competition` by the ranker. Open WebSockets on it are closed with 4404 "
            "`competition deleted`. Score and control events are kept (audit, exact dedup). "
            "A second DELETE is 404."
        ),
        tags=("competitions",),
    ),
    Operation(
        "POST",
        "/api/v1/competitions/{competition_id}/entrants",
        "Join a competition (tournaments)",
        entrants.join_competition,
        request_model=EntrantIn,
        parameters=(_COMPETITION_ID,),
        responses={
            200: Entrant,
            201: Entrant,
            **error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
        },
        scopes=(*_WRITE_SCOPES, "admin"),
        description=(
            "201 when joined, 200 when already an entrant (a retry is harmless). A"
            " `scores:write` token joins only its own subject. 409 `competition_full` at"
            " `max_entrants` (exact under concurrent joins on every replica), 409"
            " `competition_closed` at or after `ends_at`. In a `join_required` competition"
            " only entrants' scores count."
        ),
        tags=("tournaments",),
    ),
    Operation(
        "GET",
        "/api/v1/competitions/{competition_id}/entrants",
        "List a competition's entrants",
        entrants.list_entrants,
        parameters=(
            _COMPETITION_ID,
            _PAGE_LIMIT,
            Parameter(
                "after",
                "query",
                "Continue after this user id (`next_after`).",
                _IDENTIFIER_SCHEMA,
            ),
        ),
        responses={200: EntrantPage, **_ADMIN_ERRORS, **error_responses(400, 404, 422)},
        scopes=_ADMIN,
        tags=("tournaments",),
    ),
    Operation(
        "DELETE",
        "/api/v1/competitions/{competition_id}/entrants/{user_id}",
        "Remove an entrant and their standings",
        entrants.remove_entrant,
        parameters=(_COMPETITION_ID, _USER_ID),
        responses={202: ControlAccepted, **_ADMIN_ERRORS, **error_responses(404, 422)},
        scopes=_ADMIN,
        description=(
            "The place is free at once and the user's later scores are refused `not_joined`;"
            " their standings and attempts are erased by a `remove_user` control event, in"
            " order with the competition's scores."
        ),
        tags=("tournaments",),
    ),
    Operation(
        "DELETE",
        "/api/v1/competitions/{competition_id}/users/{user_id}",
        "Remove a user's records from every window",
        moderation.remove_user,
        parameters=(_COMPETITION_ID, _USER_ID),
        responses={202: ControlAccepted, **_ADMIN_ERRORS, **error_responses(404, 422)},
        scopes=_ADMIN,
        description="Published as a control event in order with the competition's scores.",
        tags=("moderation",),
    ),
    Operation(
        "POST",
        "/api/v1/competitions/{competition_id}/users/{user_id}/ban",
        "Ban a user: remove their records and refuse their later events",
        moderation.ban_user,
        parameters=(_COMPETITION_ID, _USER_ID),
        responses={202: ControlAccepted, **_ADMIN_ERRORS, **error_responses(404, 422)},
        scopes=_ADMIN,
        description="Published as a control event in order with the competition's scores.",
        tags=("moderation",),
    ),
]


def openapi_document(operations: list[Operation]) -> dict[str, Any]:
    """The ingest service's OpenAPI document for ``operations`` (plus the shared routes)."""
    return build_openapi(
        TITLE,
        VERSION,
        operations,
        description="Authenticated, validated, rate-limited score intake onto Kafka.",
    )
