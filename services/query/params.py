"""Query-string parameters of the read API, validated into 400s that name the field."""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams

from shared.errors import BadRequestError
from shared.schemas.competition import Competition
from shared.schemas.identifiers import IDENTIFIER_PATTERN
from shared.windows import ALLTIME, is_valid_window

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_RADIUS = 5
MAX_RADIUS = 50
MAX_IDS = 100
MAX_FROM_RANK = 999_999_999
IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def bounded_int(query: QueryParams, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer parameter in ``[minimum, maximum]``; 400 naming ``name`` otherwise."""
    text = query.get(name)
    if text is None:
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise BadRequestError(
            f"{name} must be an integer from {minimum} to {maximum}",
            details={"field": name, "minimum": minimum, "maximum": maximum},
        )
    value = int(text)
    if not minimum <= value <= maximum:
        raise BadRequestError(
            f"{name} must be from {minimum} to {maximum}",
            details={"field": name, "minimum": minimum, "maximum": maximum},
        )
    return value


def identifier(value: str, field: str) -> str:
    """``value`` when it is a valid id (1-64 of ``[A-Za-z0-9_.:-]``); 400 naming ``field``."""
    if not IDENTIFIER.match(value):
        raise BadRequestError(
            f"{field} must be 1 to 64 characters of [A-Za-z0-9_.:-]", details={"field": field}
        )
    return value


def window(query: QueryParams, competition: Competition) -> str:
    """The ``window`` parameter (default ``alltime``), checked against the reset schedule."""
    value = query.get("window", ALLTIME)
    if not is_valid_window(competition.reset, value):
        raise BadRequestError(
            f"unknown window {value[:80]!r} for this competition: use 'alltime', 'current'"
            " or a period label of its reset schedule",
            details={"field": "window", "reset": competition.reset.value},
        )
    return value


def user_ids(query: QueryParams) -> list[str]:
    """The ``ids`` parameter: 1 to 100 comma-separated user ids, duplicates dropped."""
    text = query.get("ids", "")
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise BadRequestError("ids must list at least one user id", details={"field": "ids"})
    unique = list(dict.fromkeys(parts))
    if len(unique) > MAX_IDS:
        raise BadRequestError(
            f"ids may list at most {MAX_IDS} user ids",
            details={"field": "ids", "maximum": MAX_IDS, "received": len(unique)},
        )
    return [identifier(part, "ids") for part in unique]
