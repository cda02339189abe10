"""OpenTelemetry tracing for every Podium service, on only when an OTLP endpoint is configured.

:func:`configure_tracing` runs once per process at start-up (the composition root calls it
for each service). It reads the standard ``OTEL_*`` variables (:class:`TracingSettings`):
without ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or with
``OTEL_SDK_DISABLED=true``) it does nothing at all: no SDK tracer provider, no exporter thread,
no middleware, no instrumentation, and :data:`ENABLED` stays False. The hot paths (an ingest
POST, the ranker's per-event decode, the notifier's fan-out) choose their traced or plain code
once, from :data:`ENABLED`, when they are built, so an untraced process pays nothing per event.

With an endpoint, spans go to an OTLP exporter (``http/protobuf`` by default; ``grpc`` when
``opentelemetry-exporter-otlp-proto-grpc`` is installed) through a batch span processor; the
sampler, the batch processor and the exporter read their other ``OTEL_*`` variables themselves
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``, ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_*``).
asyncpg and redis calls get spans from the official instrumentations.

Across Kafka the context travels as W3C ``traceparent`` / ``tracestate`` record headers
(:func:`context_headers`, :func:`extract`): ingest writes them on each ``score-events``
record, the ranker writes its batch span's on each change message, the notifier continues it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Tracer, get_current_span
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
"""The W3C trace-context header (also the Kafka record header's name)."""
TRACESTATE = "tracestate"
SERVICE_PREFIX = "podium-"
UNTRACED_PATHS = r"/health/.*,/metrics"
"""Probes and scrapes: never traced (they would drown the traces that matter)."""

ENABLED = False
"""Whether this process traces; set once by :func:`configure_tracing` (read it as
``tracing.ENABLED`` at start-up to pick the traced or the plain code path)."""

KafkaHeaders = Sequence[tuple[str, bytes]]


class TracingSettings(BaseSettings):
    """The standard OpenTelemetry variables Podium reads itself (the SDK reads the rest).

    They are not ``PODIUM_*`` names: any OpenTelemetry deployment (an operator, a collector
    sidecar injecting them) sets them the same way for every program.
    """

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    otel_exporter_otlp_endpoint: str = Field(
        "", description="OTLP base URL (`http://collector:4318`); empty: tracing off."
    )
    otel_exporter_otlp_traces_endpoint: str = Field(
        "", description="OTLP traces URL (`http://collector:4318/v1/traces`); wins over the base."
    )
    otel_exporter_otlp_protocol: Literal["http/protobuf", "grpc"] = Field(
        "http/protobuf", description="OTLP transport: `http/protobuf` or `grpc`."
    )
    otel_exporter_otlp_traces_protocol: Literal["http/protobuf", "grpc", ""] = Field(
        "", description="Transport for traces only (wins over `OTEL_EXPORTER_OTLP_PROTOCOL`)."
    )
    otel_sdk_disabled: bool = Field(False, description="`true`: tracing off whatever is set.")
    otel_traces_sampler: str = Field(
        "parentbased_always_on",
        description="Sampler (`parentbased_traceidratio` with a ratio in the argument).",
    )
    otel_traces_sampler_arg: str = Field(
        "", description="The sampler's argument: the ratio (0..1) for `*traceidratio`."
    )

    @property
    def endpoint(self) -> str:
        """The traces endpoint in force ('' when none is configured)."""
        return self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint

    @property
    def enabled(self) -> bool:
        """Whether an endpoint is configured and the SDK is not disabled."""
        return bool(self.endpoint) and not self.otel_sdk_disabled

    @property
    def protocol(self) -> str:
        """The traces transport in force."""
        return self.otel_exporter_otlp_traces_protocol or self.otel_exporter_otlp_protocol


_tracer: Tracer | None = None


def configure_tracing(service: str, settings: TracingSettings | None = None) -> bool:
    """Set up tracing for ``service`` (``ingest``, ``ranker``, ``query``, ``notifier``) when
    the environment configures an endpoint; returns whether tracing is on. Idempotent."""
    global ENABLED, _tracer
    if ENABLED:
        return True
    settings = settings if settings is not None else TracingSettings()
    if not settings.enabled:
        return False
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # the sampler comes from OTEL_TRACES_SAMPLER / _ARG (the SDK's default reads them)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: SERVICE_PREFIX + service}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings.protocol)))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument(tracer_provider=provider)
    _tracer = provider.get_tracer("podium")
    ENABLED = True
    logger.info(
        "tracing on: %s over %s, sampler %s %s",
        settings.endpoint,
        settings.protocol,
        settings.otel_traces_sampler,
        settings.otel_traces_sampler_arg,
    )
    return True


def _exporter(protocol: str) -> Any:
    """The OTLP span exporter for ``protocol`` (it reads its endpoint and headers itself)."""
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError as error:
            raise RuntimeError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc "
                "installed (or use http/protobuf)"
            ) from error
        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def tracer() -> Tracer:
    """Podium's tracer (only once tracing is on: callers check :data:`ENABLED` first)."""
    if _tracer is None:
        raise RuntimeError("tracing is not configured")
    return _tracer


class HttpTracingMiddleware:
    """OpenTelemetry's ASGI middleware for HTTP requests: a server span per request,
    continuing an incoming ``traceparent``. WebSocket connections pass through untraced (a
    span per connection lifetime says nothing; the notifier's fan-out has its own spans).
    Added by :func:`shared.http.app.create_service_app` only when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        self.app = app
        self.traced = OpenTelemetryMiddleware(
            app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.traced(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def context_headers() -> list[tuple[str, bytes]]:
    """The current context as Kafka record headers (``traceparent``, maybe ``tracestate``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


def extract(headers: KafkaHeaders | None) -> Context | None:
    """The remote context a record's headers carry, or None when they carry none."""
    carrier = {
        name: raw.decode("ascii", "replace")
        for name, raw in headers or ()
        if name in (TRACEPARENT, TRACESTATE)
    }
    if TRACEPARENT not in carrier:
        return None
    context = propagate.extract(carrier)
    if not get_current_span(context).get_span_context().is_valid:
        return None
    return context


MAX_LINKS = 128
"""The SDK's default span link limit (``OTEL_SPAN_LINK_COUNT_LIMIT``): links past it would be
dropped by the span anyway, so they are not built."""


def links(contexts: Iterable[Context | None], limit: int = MAX_LINKS) -> list[Link]:
    """One span link per distinct remote span among ``contexts`` (None entries skipped), the
    first ``limit`` of them."""
    seen: dict[tuple[int, int], Link] = {}
    for context in contexts:
        if context is None:
            continue
        if len(seen) >= limit:
            break
        span_context = get_current_span(context).get_span_context()
        key = (span_context.trace_id, span_context.span_id)
        if key not in seen:
            seen[key] = Link(span_context)
    return list(seen.values())


def sampled_traceparent(raw: bytes) -> bool:
    """Whether a ``traceparent`` value has the sampled flag (its last two hex digits), read
    without parsing the rest (unsampled contexts are skipped before any extraction)."""
    try:
        return bool(int(raw[-2:], 16) & 1)
    except ValueError:
        return False


def trace_id_of(headers: KafkaHeaders | None) -> str | None:
    """The trace id (32 hex digits) in a record's ``traceparent`` header, without the SDK
    (``00-<trace id>-<span id>-<flags>``); None when there is none."""
    for name, raw in headers or ():
        if name == TRACEPARENT and len(raw) >= 55:
            return raw[3:35].decode("ascii", "replace")
    return None


def current_ids() -> tuple[str, str] | None:
    """The active span's (trace id, span id) as hex, or None outside a recorded span."""
    span_context = get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")
