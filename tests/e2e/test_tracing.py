"""One score's journey is one trace: ingest -> Kafka -> ranker -> change message -> notifier,
and a query read continuing the same ``traceparent``, exported over OTLP/HTTP.

Every service runs as its real process (``podium serve ingest|query|notifier``, ``podium
ranker``) with ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at a real OTLP/HTTP receiver on
loopback (tests/support/otlp_receiver.py); the spans asserted on are the ones the official
exporter posted to it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from devstack.processes import free_port
from podium.settings import PlatformSettings
from shared.kafka_headers import REQUEST_ID, header_value
from tests.support.notifier_clients import connect, leaders, receive, ws_url
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.ranker_harness import override
from tests.support.servers import (
    podium_command,
    process_environment,
    running_process,
    wait_until_ready,
)
from tests.support.topic_reader import read_topic

SPANS_TIMEOUT_S = 60
REQUEST = "trace-journey-1"


def _otel(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # export within 0.1 s (default 5 s)
    }


def _journey_complete(
    trace_id: str, settings: PlatformSettings
) -> Callable[[list[ReceivedSpan]], bool]:
    def complete(spans: list[ReceivedSpan]) -> bool:
        return _journey(spans, trace_id, settings) is not None

    return complete


def _journey(
    spans: list[ReceivedSpan], trace_id: str, settings: PlatformSettings
) -> dict[str, ReceivedSpan] | None:
    """The spans of the score's journey (by stage), or None while one is missing."""

    def first(service: str, name: str, trace: str | None = None) -> ReceivedSpan | None:
        return next(
            (
                span
                for span in spans
                if span.service == service
                and span.name == name
                and (trace is None or span.trace_id == trace)
            ),
            None,
        )

    ingest = next(
        (
            s
            for s in spans
            if s.service == "podium-ingest" and s.trace_id == trace_id and s.kind == 2
        ),
        None,
    )  # kind 2: SERVER
    publish = first("podium-ingest", f"{settings.topic_score_events} publish", trace_id)
    # the batch span in the score's trace, or linking to it
    batch = next(
        (
            span
            for span in spans
            if span.service == "podium-ranker"
            and span.name == f"{settings.topic_score_events} apply"
            and (span.trace_id == trace_id or trace_id in span.link_trace_ids)
        ),
        None,
    )
    applied = first("podium-ranker", "score apply", trace_id)
    fan_out = first("podium-notifier", "notifier fan-out", batch.trace_id) if batch else None
    received = (
        first("podium-notifier", f"{settings.topic_changes} receive", batch.trace_id)
        if batch
        else None
    )
    query = next((s for s in spans if s.service == "podium-query" and s.trace_id == trace_id), None)
    stages = {
        "ingest": ingest,
        "publish": publish,
        "batch": batch,
        "applied": applied,
        "fan_out": fan_out,
        "received": received,
        "query": query,
    }
    if any(span is None for span in stages.values()):
        return None
    return {stage: span for stage, span in stages.items() if span is not None}


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_bytes().splitlines():
        if raw.startswith(b"{"):
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                continue
    return lines


async def test_one_score_is_one_trace_from_202_to_the_websocket_frame(
    settings: PlatformSettings, token_for: Callable[..., str], artifacts_dir: Path
) -> None:
    admin, server = token_for("ops", "admin"), token_for("game", "scores:write:any")
    ports = {"ingest": free_port(), "query": free_port(), "notifier": free_port()}
    receiver = OtlpReceiver()
    trace_id, parent_span_id = secrets.token_hex(16), secrets.token_hex(8)
    ranker_log = artifacts_dir / "tracing-ranker.log"
    with receiver.running():
        otel = _otel(receiver)
        env = {name: process_environment(settings, **otel) for name in ports}
        for name, port in ports.items():
            env[name][f"PODIUM_{name.upper()}_PORT"] = str(port)
        ranker_settings = override(
            settings, ranker_port=free_port(), log_level="DEBUG", log_json=True
        )
        with (
            running_process(
                podium_command("ranker"), process_environment(ranker_settings, **otel), ranker_log
            ),
            running_process(
                podium_command("serve", "ingest"),
                env["ingest"],
                artifacts_dir / "tracing-ingest.log",
            ),
            running_process(
                podium_command("serve", "query"), env["query"], artifacts_dir / "tracing-query.log"
            ),
            running_process(
                podium_command("serve", "notifier"),
                env["notifier"],
                artifacts_dir / "tracing-notifier.log",
            ),
        ):
            urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            await asyncio.gather(*(wait_until_ready(url, 120) for url in urls.values()))
            async with httpx.AsyncClient(timeout=20) as client:
                created = await client.post(
                    f"{urls['ingest']}/api/v1/competitions",
                    json={"id": "traced", "name": "Traced", "operator": "best"},
                    headers={"Authorization": f"Bearer {admin}"},
                )
                assert created.status_code == 201, created.text
                async with connect(ws_url(urls["notifier"], "traced", "top=3")) as socket:
                    assert (await receive(socket))["type"] == "snapshot"
                    # the first score also waits for the ranker to join its group
                    warm = await client.post(
                        f"{urls['ingest']}/api/v1/scores",
                        json={
                            "event_id": "warm",
                            "competition_id": "traced",
                            "user_id": "bob",
                            "value": 1,
                        },
                        headers={"Authorization": f"Bearer {server}"},
                    )
                    assert warm.status_code == 202, warm.text
                    assert leaders(await receive(socket, timeout_s=90)) == [("bob", 1.0)]

                    posted = await client.post(
                        f"{urls['ingest']}/api/v1/scores",
                        json={
                            "event_id": "journey",
                            "competition_id": "traced",
                            "user_id": "alice",
                            "value": 9,
                        },
                        headers={
                            "Authorization": f"Bearer {server}",
                            "traceparent": f"00-{trace_id}-{parent_span_id}-01",
                            "X-Request-ID": REQUEST,
                        },
                    )
                    assert posted.status_code == 202, posted.text
                    update = await receive(socket, timeout_s=30)
                    assert leaders(update) == [("alice", 9.0), ("bob", 1.0)]

                read = await client.get(
                    f"{urls['query']}/api/v1/leaderboards/traced/top",
                    headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
                )
                assert read.status_code == 200, read.text

            spans = await asyncio.to_thread(
                receiver.wait_for, _journey_complete(trace_id, settings), SPANS_TIMEOUT_S
            )

    journey = _journey(spans, trace_id, settings)
    assert journey is not None
    # ingest continued the caller's trace: its server span's parent is the caller's span
    assert journey["ingest"].parent_span_id == parent_span_id
    assert journey["publish"].attributes["podium.request_id"] == REQUEST
    # the record carried the context of the publish span into Kafka
    records = await read_topic(settings, settings.topic_score_events)
    journey_record = next(r for r in records if r.value and b'"journey"' in r.value)
    assert header_value(journey_record.headers, REQUEST_ID) == REQUEST
    traceparent = header_value(journey_record.headers, "traceparent")
    assert traceparent == f"00-{trace_id}-{journey['publish'].span_id}-01"
    # the event's apply is in its own trace, linked to the batch; the batch links the event
    applied = journey["applied"]
    assert applied.attributes["podium.event_id"] == "journey"
    assert applied.attributes["podium.outcome"] == "applied"
    assert applied.attributes["podium.request_id"] == REQUEST
    assert isinstance(applied.attributes["podium.event_age_s"], float)
    assert journey["batch"].trace_id in applied.link_trace_ids
    assert trace_id in journey["batch"].link_trace_ids
    # a lone trace in its batch: the batch, the change message and the fan-out are in it too
    assert journey["batch"].trace_id == trace_id
    fan_out = journey["fan_out"]
    assert fan_out.attributes["podium.competition_id"] == "traced"
    assert fan_out.attributes["podium.fanout_clients"] == 1
    # written there and then, or handed to the client's sender (a frame just sent)
    assert fan_out.attributes["podium.frames_written_at_once"] in (0, 1)
    # the fan-out continues the change message's receive span
    assert fan_out.parent_span_id == journey["received"].span_id
    # the ranker's line about the event names its request id and trace id
    lines = [
        line
        for line in _log_lines(ranker_log)
        if line.get("event_id") == "journey"
        and line.get("outcome") == "applied"
        and line.get("trace_id") == trace_id  # the log file is appended to across runs
    ]
    assert lines, "no ranker log line for the applied event"
    assert lines[0]["request_id"] == REQUEST
    assert lines[0]["message"] == "event journey applied"
