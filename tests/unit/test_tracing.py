"""Tracing is off, and costs nothing, unless an OTLP endpoint is configured (issue #13)."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from opentelemetry import trace

from services.ingest.publisher import EventPublisher, publisher_class
from services.ranker.agent import BatchHandler, handler_class
from shared import tracing
from shared.http.app import create_service_app
from shared.settings import CommonSettings
from shared.tracing import HttpTracingMiddleware, TracingSettings, configure_tracing

OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)


@pytest.fixture
def no_otel(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_otel")
def test_without_an_endpoint_nothing_is_set_up() -> None:
    threads_before = {thread.name for thread in threading.enumerate()}
    assert configure_tracing("ingest") is False
    assert tracing.ENABLED is False
    # the API's proxy, not the SDK's provider: no processor, no exporter, no thread
    assert not hasattr(trace.get_tracer_provider(), "add_span_processor")
    assert {thread.name for thread in threading.enumerate()} == threads_before
    # the hot paths were built untraced
    assert publisher_class() is EventPublisher
    assert handler_class() is BatchHandler
    app = create_service_app("ingest", CommonSettings(env="dev"), routes=[])
    layers: list[object] = [m.cls for m in app.user_middleware]
    assert HttpTracingMiddleware not in layers


def test_the_sdk_disabled_switch_wins_over_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert TracingSettings().enabled is False
    assert configure_tracing("ingest") is False
    assert tracing.ENABLED is False


def test_a_traces_endpoint_alone_enables_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")
    settings = TracingSettings()
    assert settings.enabled
    assert settings.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert settings.protocol == "http/protobuf"


@pytest.mark.usefixtures("no_otel")
def test_an_untraced_service_process_never_imports_the_sdk() -> None:
    """The composition root's app factory, in a fresh interpreter: the SDK's tracing, the
    exporter and the instrumentations are not even imported without an endpoint (redis-py
    imports the SDK's metrics module whenever it is installed; its own telemetry stays off
    unless a program enables it)."""
    code = (
        "import sys\n"
        "from podium.apps import query_app\n"
        "query_app()\n"
        "loaded = [m for m in sys.modules if m.startswith(('opentelemetry.sdk.trace', "
        "'opentelemetry.exporter', 'opentelemetry.instrumentation'))]\n"
        "print(loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "PODIUM_ENV": "dev"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stderr


def test_trace_id_is_read_from_the_header_without_the_sdk() -> None:
    headers = [("traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    assert tracing.trace_id_of(headers) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert tracing.trace_id_of([("request_id", b"r")]) is None
    assert tracing.extract(headers) is not None
    assert tracing.extract([("traceparent", b"garbage")]) is None
