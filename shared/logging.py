"""Structured logging: one JSON object per line, carrying the current request id (and, inside a
traced operation, its ``trace_id`` and ``span_id``)."""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
import secrets
import sys

from pythonjsonlogger.json import JsonFormatter

from shared import tracing
from shared.log_redaction import RedactSecrets

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "podium_request_id", default=None
)
_service_name = "podium"


class _RequestIds:
    """Request ids: 16 random hex characters drawn once per process, then a 16-digit hex
    counter (32 characters, as a uuid4's hex). Unique across replicas by the random half,
    and ~1.5 us cheaper per request than ``uuid4()`` (a ``getrandom`` system call and a UUID
    object each). Ids name requests in logs and on Kafka records; they are not secrets."""

    def __init__(self) -> None:
        self.reseed()
        # a forked child must not repeat its parent's ids
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        """A new random half and a fresh counter."""
        self._prefix = secrets.token_hex(8)
        self._numbers = itertools.count()

    def next(self) -> str:
        """The next id."""
        return f"{self._prefix}{next(self._numbers):016x}"


_request_ids = _RequestIds()


def new_request_id() -> str:
    """A fresh request id (32 hex characters, unique across processes)."""
    return _request_ids.next()


class _ContextFilter(logging.Filter):
    """Adds ``service`` and ``request_id`` to every record, and ``trace_id``/``span_id`` while
    a span is active (tracing on only).

    A line about another request's work (the ranker's line about one event of a batch) names
    that request with ``extra={"request_id": ..., "trace_id": ...}``: given values are kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = _service_name
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        if tracing.ENABLED and not hasattr(record, "trace_id"):
            ids = tracing.current_ids()
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


def configure_logging(service: str, *, level: str = "INFO", json_lines: bool = True) -> None:
    """Route every logger to stderr, as JSON lines (or text), tagged with ``service``."""
    global _service_name
    _service_name = service
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.addFilter(RedactSecrets())
    if json_lines:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(service)s %(request_id)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(service)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
