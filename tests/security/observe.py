"""What an attack left behind: events on the topic, tables in PostgreSQL."""

from __future__ import annotations

import asyncpg

from podium.settings import PlatformSettings
from shared.schemas.score_event import ControlEvent, ScoreEvent, parse_topic_message
from tests.support.topic_reader import read_topic

EXPECTED_TABLES = {"competitions", "score_events", "standings"}


async def published(settings: PlatformSettings) -> list[ScoreEvent | ControlEvent]:
    """Every score and control event on the stack's score topic so far."""
    records = await read_topic(settings, settings.topic_score_events)
    return [parse_topic_message(record.value) for record in records if record.value is not None]


async def tables(settings: PlatformSettings) -> set[str]:
    """The tables of the stack's schema."""
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
            settings.db_schema,
        )
    finally:
        await connection.close()
    return {row["table_name"] for row in rows}
