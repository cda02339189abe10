"""The HTTP services' app factories as uvicorn calls them: no arguments.

``podium serve`` hands uvicorn one of these by import path (``podium.apps:ingest_app``), and
each worker process calls it to build its own app. A factory loads its service's settings
the composition root's way (:func:`podium.settings.load_settings_or_exit`: unknown
``PODIUM_*`` names refused, only the service's own class validated) and passes them to the
service's ``create_app``, which takes its settings as an argument and never reads the
environment itself.

Each factory also configures logging and tracing (:func:`shared.tracing.configure_tracing`:
on only when an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set): with ``PODIUM_HTTP_WORKERS`` > 1
every worker is a fresh process that never ran the CLI's set-up, and would otherwise log with
Python's defaults (and export through a span processor whose thread did not survive the fork).
"""

from __future__ import annotations

from starlette.applications import Starlette

from podium.settings import SettingsT, load_settings_or_exit
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.notifier.app import create_app as create_notifier
from services.notifier.settings import NotifierSettings
from services.query.app import create_app as create_query
from services.query.settings import QuerySettings
from shared.logging import configure_logging
from shared.tracing import configure_tracing


def _with_logging(settings: SettingsT, service: str) -> SettingsT:
    configure_logging(service, level=settings.log_level, json_lines=settings.log_json)
    configure_tracing(service)
    return settings


def ingest_app() -> Starlette:
    """The ingest app, from ``IngestSettings`` loaded from the environment."""
    return create_ingest(_with_logging(load_settings_or_exit(IngestSettings), "ingest"))


def query_app() -> Starlette:
    """The query app, from ``QuerySettings`` loaded from the environment."""
    return create_query(_with_logging(load_settings_or_exit(QuerySettings), "query"))


def notifier_app() -> Starlette:
    """The notifier app, from ``NotifierSettings`` loaded from the environment."""
    return create_notifier(_with_logging(load_settings_or_exit(NotifierSettings), "notifier"))
