"""PostgreSQL access: a bounded asyncpg pool pinned to Podium's schema."""

from __future__ import annotations

import asyncpg
import orjson
from pydantic import SecretStr

from shared.settings import CommonSettings

POSTGRES_FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)
"""What asyncpg raises when PostgreSQL is down, unreachable, slow or refuses: callers that can
answer without it (a stale cache entry) catch these, and nothing else."""


def application_name(settings: CommonSettings) -> str:
    """How Podium's connections name themselves in ``pg_stat_activity``: ``podium/<schema>``."""
    return f"podium/{settings.db_schema}"


async def _init_connection(connection: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name,
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def create_pool(
    settings: CommonSettings,
    *,
    dsn: SecretStr | None = None,
    max_size: int | None = None,
    min_size: int | None = None,
) -> asyncpg.Pool:
    """Open a pool with connect and statement timeouts and ``search_path`` set to the schema.

    ``dsn`` replaces ``PODIUM_DATABASE_URL``: a read replica's pool
    (:mod:`shared.read_replicas`) passes one of ``PODIUM_DATABASE_READ_URL``'s, with
    ``min_size=0`` so that a replica down at start-up is skipped, not fatal.
    """
    dsn = dsn or settings.database_url
    size = max_size or settings.db_pool_max
    pool = await asyncpg.create_pool(
        dsn.get_secret_value(),
        min_size=min(settings.db_pool_min if min_size is None else min_size, size),
        max_size=size,
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_command_timeout_s,
        init=_init_connection,
        server_settings={
            "search_path": settings.db_schema,
            "application_name": application_name(settings),
            "statement_timeout": str(int(settings.db_command_timeout_s * 1000)),
            "plan_cache_mode": settings.db_plan_cache_mode,
        },
    )
    assert pool is not None
    return pool


async def connect(settings: CommonSettings) -> asyncpg.Connection:
    """One connection (for the CLI and migrations), with the same settings as the pool."""
    connection: asyncpg.Connection = await asyncpg.connect(
        settings.database_url.get_secret_value(),
        timeout=settings.db_connect_timeout_s,
        command_timeout=settings.db_command_timeout_s,
        server_settings={
            "search_path": settings.db_schema,
            "application_name": application_name(settings),
            "plan_cache_mode": settings.db_plan_cache_mode,
        },
    )
    await _init_connection(connection)
    return connection


async def ping(pool: asyncpg.Pool) -> None:
    """Raise unless PostgreSQL answers a trivial query."""
    await pool.fetchval("SELECT 1")
