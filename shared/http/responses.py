"""Fast JSON responses (orjson)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse


class JSONResponse(_StarletteJSONResponse):
    """``application/json`` rendered with orjson (datetimes as RFC 3339)."""

    def render(self, content: Any) -> bytes:
        """Serialise ``content``; pydantic models should be dumped first."""
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
