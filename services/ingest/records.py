"""Topic records of accepted score events, encoded without a second pydantic pass.

The wire JSON is what ``ScoreEvent.model_dump_json`` writes (same keys, RFC 3339 date-times
with their offset, ``Z`` for UTC) so ``parse_topic_message`` reads it unchanged; building a
dict and one ``orjson.dumps`` costs ~0.9 µs instead of ~8.7 µs per event. The receive time
is the same for every event of a request, so it is rendered once (:func:`rfc3339`) and
copied into each record as text (rendering it per event was half of the encoding).
"""

from __future__ import annotations

from datetime import datetime

import orjson

from shared.schemas.score_event import ScoreEventIn


def rfc3339(moment: datetime) -> str:
    """``moment`` as the wire writes date-times (``Z`` for UTC, microseconds when not 0)."""
    text: str = orjson.dumps(moment, option=orjson.OPT_UTC_Z)[1:-1].decode()
    return text


def encode_score(event: ScoreEventIn, received_at: str) -> bytes:
    """The ``score-events`` value of a validated event (schema v1); ``received_at`` is the
    receive time as :func:`rfc3339` text, also the event time when the event has none."""
    message = {
        "v": 1,
        "kind": "score",
        "event_id": event.event_id,
        "competition_id": event.competition_id,
        "user_id": event.user_id,
        "value": event.value,
        "ts": received_at if event.ts is None else event.ts,
        "received_at": received_at,
        "metadata": event.metadata,
    }
    if event.team_id is not None:  # absent otherwise: the record stays as it was
        message["team_id"] = event.team_id
    return orjson.dumps(message, option=orjson.OPT_UTC_Z)
