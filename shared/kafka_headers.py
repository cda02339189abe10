"""Kafka record headers Podium writes: who produced a record and in which request.

Ingest sets them on every ``score-events`` record so a consumer (the ranker, the
dead-letter reader) can log the originating request id and producer subject; with tracing on
the record also carries ``traceparent`` (:mod:`shared.tracing`). The ranker copies them onto
the record's dead letter.
"""

from __future__ import annotations

from collections.abc import Sequence

REQUEST_ID = "request_id"
"""The HTTP request id (``X-Request-ID``) the record was accepted in."""
PRODUCER = "producer"
"""The ``sub`` of the token that produced the record."""

KafkaHeaders = list[tuple[str, bytes]]


def origin_headers(request_id: str | None, producer: str) -> KafkaHeaders:
    """Headers naming the request and the producer of a record."""
    headers = [(PRODUCER, producer.encode())]
    if request_id:
        headers.append((REQUEST_ID, request_id.encode()))
    return headers


def header_value(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """The decoded value of header ``name`` (the last one wins), or None."""
    value = None
    for key, raw in headers or ():
        if key == name:
            value = raw.decode("utf-8", "replace")
    return value
