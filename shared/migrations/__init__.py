"""Schema migrations: numbered SQL files applied once each, in order, under an advisory lock.

Running ``podium migrate`` twice is harmless: applied versions are recorded in
``schema_migrations`` and concurrent runners serialise on a PostgreSQL advisory lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

from shared.db import connect
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)
_ADVISORY_LOCK_ID = 0x706F6469  # "podi"


@dataclass(frozen=True, slots=True)
class Migration:
    """One SQL file: ``NNNN_name.sql``."""

    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with Podium, ordered by version."""
    migrations = []
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            migrations.append(Migration(int(version), rest.removesuffix(".sql"), entry.read_text()))
    return sorted(migrations, key=lambda migration: migration.version)


async def apply_migrations(connection: asyncpg.Connection, schema: str) -> list[int]:
    """Apply the missing migrations to ``schema`` and return the versions applied."""
    quoted_schema = '"' + schema.replace('"', '""') + '"'
    await connection.execute("SELECT pg_advisory_lock($1)", _ADVISORY_LOCK_ID)
    try:
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema}")
        await connection.execute(f"SET search_path TO {quoted_schema}")
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await connection.fetch("SELECT version FROM schema_migrations")
        }
        applied = []
        for migration in available_migrations():
            if migration.version in done:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            logger.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration.version)
        return applied
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _ADVISORY_LOCK_ID)


async def migrate(settings: CommonSettings) -> list[int]:
    """Connect with ``settings`` and apply the missing migrations."""
    connection = await connect(settings)
    try:
        return await apply_migrations(connection, settings.db_schema)
    finally:
        await connection.close()
