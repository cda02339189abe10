"""The identifier type shared by event, user and competition ids."""

from typing import Annotated

from pydantic import StringConstraints

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"

Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
"""1 to 64 characters of ``[A-Za-z0-9_.:-]``: ASCII only, so no confusables or control codes."""

BOARD_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}(~teams)?$"

BoardId = Annotated[str, StringConstraints(pattern=BOARD_ID_PATTERN)]
"""A board: a competition id, or its team board's (``<competition id>~teams``, see
``shared.teams``); change messages name boards."""
