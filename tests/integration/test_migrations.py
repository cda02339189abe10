"""Migrations apply once, idempotently, into the configured schema."""

from __future__ import annotations

import asyncio

import asyncpg

from podium.settings import PlatformSettings
from shared.migrations import available_migrations, migrate


async def test_migrate_is_idempotent_and_creates_the_tables(settings: PlatformSettings) -> None:
    # the fixture already migrated once; twice more (concurrently) applies nothing
    first, second = await asyncio.gather(migrate(settings), migrate(settings))
    assert first == second == []
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        tables = {
            row["table_name"]
            for row in await connection.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1",
                settings.db_schema,
            )
        }
        versions = await connection.fetch(
            f'SELECT version FROM "{settings.db_schema}".schema_migrations ORDER BY version'
        )
    finally:
        await connection.close()
    assert {"competitions", "score_events", "standings", "schema_migrations"} <= tables
    assert [row["version"] for row in versions] == [m.version for m in available_migrations()]


async def test_a_replayed_event_row_is_a_no_op(settings: PlatformSettings) -> None:
    """The key is (event_id, event_ts), the partition key being part of it (issue #18);
    dedup by event_id alone is the ranker's lookup (tests/integration/test_event_horizon.py)."""
    connection = await asyncpg.connect(
        settings.database_url.get_secret_value(),
        server_settings={"search_path": settings.db_schema},
    )
    try:
        insert = (
            "INSERT INTO score_events (event_id, competition_id, user_id, value, event_ts,"
            " received_at) VALUES ('e1', 'c', 'u', 1, '2026-11-25T12:00:00Z', now())"
            " ON CONFLICT DO NOTHING"
        )
        assert await connection.execute(insert) == "INSERT 0 1"
        assert await connection.execute(insert) == "INSERT 0 0"
    finally:
        await connection.close()
