"""Reading path and query parameters with errors that name the parameter."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request

from shared.errors import BadRequestError, ValidationFailedError
from shared.schemas.identifiers import IDENTIFIER_PATTERN, Identifier

_identifier: TypeAdapter[str] = TypeAdapter(Identifier)


def path_identifier(request: Request, name: str) -> str:
    """The path parameter ``name``; 422 unless it is a valid identifier."""
    value = str(request.path_params[name])
    try:
        return _identifier.validate_python(value)
    except ValidationError as error:
        raise ValidationFailedError(
            f"path parameter {name!r} is not a valid identifier",
            details=[
                {
                    "field": f"path.{name}",
                    "message": f"must match {IDENTIFIER_PATTERN}",
                    "type": "string_pattern_mismatch",
                }
            ],
        ) from error


def query_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """The integer query parameter ``name``; 400 naming it when absent-but-bad or out of range."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise BadRequestError(
            f"query parameter {name!r} must be an integer from {minimum} to {maximum}",
            details={"field": f"query.{name}", "value": raw[:64]},
        )
    return int(raw)


PAGE_DEFAULT = 50
PAGE_MAX = 200
"""The admin lists' page sizes (competitions, entrants)."""


def page_limit(request: Request) -> int:
    """The ``limit`` of an admin list page (``PAGE_DEFAULT`` when absent)."""
    return query_int(request, "limit", default=PAGE_DEFAULT, minimum=1, maximum=PAGE_MAX)


def query_identifier(request: Request, name: str) -> str | None:
    """The optional identifier query parameter ``name``; 400 naming it when malformed."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return _identifier.validate_python(raw)
    except ValidationError as error:
        raise BadRequestError(
            f"query parameter {name!r} is not a valid identifier",
            details={"field": f"query.{name}"},
        ) from error
