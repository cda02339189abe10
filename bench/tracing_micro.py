"""Micro-benchmark of the traced ranker's extra work per batch (issue #13), in-process.

What the traced handler adds to a batch when tracing is on: each record's context (one
extraction per distinct ``traceparent``; none for unsampled ones), the batch span's links and
one ``score apply`` span per traced request, through the SDK's batch span processor to an
exporter that drops everything (the network is not the question). Prints CPU µs per event
for records without a ``traceparent``, with unsampled ones, one shared sampled one (a batch
POST) and a sampled one each (every event its own traced single POST).

    .venv/bin/python -m bench.tracing_micro --events 5000
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from services.ranker.agent import _event_contexts, _event_spans
from services.ranker.applier import outcomes
from services.ranker.planner import BatchPlan
from services.ranker.records import IncomingEvent, decode
from shared import tracing


class _DroppingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _traceparent(flags: str) -> bytes:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{flags}".encode()


def _events(count: int, header: Callable[[], list[tuple[str, bytes]]]) -> list[IncomingEvent]:
    now = datetime.now(UTC).isoformat()
    return [
        decode(
            0,
            index,
            b"c1",
            orjson.dumps(
                {
                    "kind": "score",
                    "event_id": f"e{index}",
                    "competition_id": "c1",
                    "user_id": f"u{index % 50}",
                    "value": index,
                    "ts": now,
                    "received_at": now,
                }
            ),
            [("request_id", b"r"), *header()],
        )
        for index in range(count)
    ]


def main() -> None:
    """Run each case and print its CPU per event (best of ``--repeats``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per batch")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DroppingExporter(), max_queue_size=100_000))
    tracer = provider.get_tracer("podium-bench")
    shared = _traceparent("01")
    cases: dict[str, Callable[[], list[tuple[str, bytes]]]] = {
        "no traceparent": list,
        "unsampled traceparent each": lambda: [("traceparent", _traceparent("00"))],
        "one sampled traceparent (batch POST)": lambda: [("traceparent", shared)],
        "sampled traceparent each (single POSTs)": lambda: [("traceparent", _traceparent("01"))],
    }
    for label, header in cases.items():
        events = _events(args.events, header)
        plan = BatchPlan()
        plan.new_scores = [event.message for event in events if event.message is not None]  # type: ignore[misc]
        best_s = float("inf")
        for _ in range(args.repeats):
            started = time.process_time()
            contexts = _event_contexts(events)
            with tracer.start_as_current_span("batch", links=tracing.links(contexts)):
                _event_spans(tracer, events, contexts, outcomes(events, plan), time.time_ns())
            best_s = min(best_s, time.process_time() - started)
        print(f"{label:42} {best_s / args.events * 1e6:6.1f} us CPU per event")
    provider.shutdown()


if __name__ == "__main__":
    main()
