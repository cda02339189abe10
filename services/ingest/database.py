"""Mapping PostgreSQL failures at the ingest edge: outages are 503, unstorable input 422."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from shared.errors import DependencyUnavailableError, ValidationFailedError


@contextlib.contextmanager
def database_errors_mapped() -> Iterator[None]:
    """Raise 503 (retry later) when PostgreSQL cannot be reached or times out, and 422 when
    it refuses a value the schema let through (e.g. a NUL character in text)."""
    try:
        yield
    except asyncpg.DataError as error:
        raise ValidationFailedError(
            "a value cannot be stored",
            details=[{"field": "body", "message": str(error)[:200], "type": "unstorable"}],
        ) from error
    except asyncpg.QueryCanceledError as error:
        raise DependencyUnavailableError("the database timed out", retry_after_s=1.0) from error
    except (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
    ) as error:
        raise DependencyUnavailableError(
            "the database is unavailable", retry_after_s=1.0
        ) from error
