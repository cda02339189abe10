"""The JSON error body every Podium HTTP error uses (documentation model for OpenAPI).

The body itself is built by :func:`shared.http.errors.error_response`; this model only
describes it so that OpenAPI documents can reference one schema.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorInfo(BaseModel):
    """What went wrong: a stable machine code, a human message and optional details."""

    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """``{"error": {"code", "message", "details"?}}``."""

    error: ErrorInfo
