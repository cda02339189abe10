"""The timestamp type of request bodies: an ISO 8601 date-time with a UTC offset.

pydantic's lax mode also takes a number as a Unix time; the documents say "string,
date-time", so a number is refused instead of being read as a date in 1970 or 1454.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator


def _not_a_number(value: object) -> object:
    if isinstance(value, int | float):  # bool is an int too
        raise ValueError("must be an ISO 8601 date-time string with an offset, not a number")
    return value


IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]
"""An offset-aware date-time given as ISO 8601 text (or a ``datetime`` from Python code)."""
