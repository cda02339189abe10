"""Structured logging: one JSON object per line, carrying the current request id (and, inside a
traced operation, its ``trace_id`` and ``span_id``)."""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid

from pythonjsonlogger.json import JsonFormatter

from shared import tracing
from shared.log_redaction import RedactSecrets

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "podium_request_id", default=None
)
_service_name = "podium"


def new_request_id() -> str:
    """A fresh random request id (32 hex characters)."""
    return uuid.uuid4().hex


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
