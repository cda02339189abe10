"""Podium's error hierarchy.

Domain code raises these; the HTTP edge maps them to responses in one place
(:mod:`shared.http.errors`) and consumers use ``retriable`` to choose between retrying a
batch and dead-lettering an event.
"""

from __future__ import annotations

from typing import Any


class PodiumError(Exception):
    """Base of every error Podium raises on purpose."""

    status_code = 500
    code = "internal_error"
    retriable = False

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequestError(PodiumError):
    """The request is malformed (bad JSON, bad query parameter, tampered cursor)."""

    status_code = 400
    code = "bad_request"


class ValidationFailedError(PodiumError):
    """The request parsed but fails the schema; ``details`` lists each field."""

    status_code = 422
    code = "validation_failed"


class AuthenticationError(PodiumError):
    """No credentials, or credentials that do not verify (expired, forged, retired key)."""

    status_code = 401
    code = "unauthenticated"


class PermissionDeniedError(PodiumError):
    """Authenticated, but the token's scopes or subject do not allow this."""

    status_code = 403
    code = "forbidden"


class NotFoundError(PodiumError):
    """The resource does not exist (or is not visible to the caller)."""

    status_code = 404
    code = "not_found"


class ConflictError(PodiumError):
    """The resource already exists or is in a state that forbids the change."""

    status_code = 409
    code = "conflict"


class CompetitionFullError(ConflictError):
    """A tournament join beyond the competition's ``max_entrants``."""

    code = "competition_full"


class CompetitionClosedError(ConflictError):
    """A tournament join at or after the competition's ``ends_at``."""

    code = "competition_closed"


class PayloadTooLargeError(PodiumError):
    """The request body exceeds ``PODIUM_MAX_BODY_BYTES``."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaTypeError(PodiumError):
    """The request body is not ``application/json``."""

    status_code = 415
    code = "unsupported_media_type"


class UpgradeRequiredError(PodiumError):
    """A plain HTTP request to an endpoint that only speaks WebSocket."""

    status_code = 426
    code = "upgrade_required"


class RateLimitedError(PodiumError):
    """Too many requests; ``retry_after_s`` says when to come back."""

    status_code = 429
    code = "rate_limited"
    retriable = True

    def __init__(self, message: str, *, retry_after_s: float, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class DependencyUnavailableError(PodiumError):
    """Kafka, PostgreSQL or Redis did not answer in time; retry later."""

    status_code = 503
    code = "unavailable"
    retriable = True

    def __init__(self, message: str, *, retry_after_s: float = 1.0, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.retry_after_s = retry_after_s


class EventRejectedError(PodiumError):
    """An event can never be applied (unknown competition, bad value, banned user).

    ``reason`` is a short machine-readable word used for the dead-letter header and metrics.
    """

    status_code = 422
    code = "event_rejected"

    def __init__(self, reason: str, message: str, *, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.reason = reason
