"""Podium configuration: one settings object, read from ``PODIUM_*`` environment variables.

Every service loads it once through :func:`get_settings`; nothing else in the code base reads
the environment. The fields are flat (``PODIUM_INGEST_PORT``, not ``PODIUM_INGEST__PORT``) so
that the variable names stay short and greppable; names start with the part of the system they
configure.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PODIUM_"
MIN_JWT_SECRET_LENGTH = 32
DEV_JWT_SECRET = "podium-dev-secret-do-not-use-in-production-0123456789"  # noqa: S105


def _split_csv(value: object) -> object:
    """Accept ``a,b,c`` (or a JSON-less single value) for list settings."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """All of Podium's configuration. Required values in production have no usable default."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        case_sensitive=False,
        validate_default=True,
    )

    # --- general -------------------------------------------------------------------------
    env: Literal["dev", "test", "production"] = Field(
        "production", description="`dev` relaxes secret checks; `production` enforces them."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_json: bool = Field(True, description="JSON logs (one object per line) instead of text.")
    host: str = Field("127.0.0.1", description="Address the HTTP services bind to.")
    ingest_port: int = Field(8001, ge=1, le=65535, description="Ingest service HTTP port.")
    query_port: int = Field(8002, ge=1, le=65535, description="Query service HTTP port.")
    notifier_port: int = Field(8003, ge=1, le=65535, description="Notifier service HTTP port.")
    ranker_port: int = Field(
        8004, ge=1, le=65535, description="Ranker health and metrics HTTP port."
    )
    http_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes per service.")
    tls_certfile: str | None = Field(None, description="TLS certificate file (direct exposure).")
    tls_keyfile: str | None = Field(None, description="TLS private key file (direct exposure).")
    shutdown_grace_s: float = Field(
        10.0, gt=0, description="Seconds a service waits for in-flight work on shutdown."
    )

    # --- HTTP edge -----------------------------------------------------------------------
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body (bytes); larger is 413."
    )
    cors_allow_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated CORS origin allowlist (empty: none)."
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated proxy addresses whose X-Forwarded-For is believed.",
    )
    http_body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request body once its headers arrived; "
        "slower is 408 (uvicorn has no body-read timeout).",
    )

    # --- auth ----------------------------------------------------------------------------
    jwt_secrets: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated HS256 secrets; the first signs, all verify (rotation).",
    )
    jwt_issuer: str = Field("podium", description="`iss` claim written and required.")
    jwt_leeway_s: int = Field(5, ge=0, le=300, description="Clock skew allowed on exp/nbf.")
    jwt_default_ttl_s: int = Field(3600, ge=1, description="Lifetime of `podium token` tokens.")

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers (host:port,host:port)."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when a SASL protocol is used."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(None, description="CA bundle for Kafka TLS.")
    kafka_enable_idempotence: bool = Field(
        False, description="Idempotent producer; turn on for real Kafka (tansu lacks it)."
    )
    kafka_request_timeout_s: float = Field(
        5.0, gt=0, description="Producer request timeout; a publish slower than this is a 503."
    )
    kafka_linger_ms: int = Field(2, ge=0, le=1000, description="Producer batching delay.")
    kafka_session_timeout_ms: int = Field(
        6000, ge=1000, description="Consumer group session timeout (short in dev: fast joins)."
    )
    kafka_heartbeat_interval_ms: int = Field(
        1000, ge=100, description="Consumer group heartbeat interval."
    )
    kafka_partitions: int = Field(
        6, ge=1, description="Partitions of score-events when Podium creates the topic."
    )
    kafka_replication_factor: int = Field(
        1, ge=1, description="Replication factor when Podium creates topics (3 in production)."
    )
    topic_score_events: str = Field("score-events", description="Topic of score/control events.")
    topic_changes: str = Field("leaderboard-changes", description="Topic of change messages.")
    topic_dead_letters: str = Field("score-events.dlq", description="Dead-letter topic.")

    # --- PostgreSQL ----------------------------------------------------------------------
    database_url: SecretStr = Field(
        SecretStr("postgresql://postgres@127.0.0.1:5432/postgres"),
        description="PostgreSQL DSN (the system of record).",
    )
    database_read_url: SecretStr | None = Field(
        None, description="Optional read-replica DSN used by the query service."
    )
    db_schema: str = Field(
        "podium", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema of Podium."
    )
    db_pool_min: int = Field(1, ge=0, description="Minimum pooled PostgreSQL connections.")
    db_pool_max: int = Field(10, ge=1, description="Maximum pooled PostgreSQL connections.")
    db_connect_timeout_s: float = Field(3.0, gt=0, description="PostgreSQL connect timeout.")
    db_command_timeout_s: float = Field(10.0, gt=0, description="PostgreSQL statement timeout.")

    # --- Redis ---------------------------------------------------------------------------
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL (the ranking index)."
    )
    redis_key_prefix: str = Field(
        "podium:", description="Prefix of every Redis key (isolates tenants and tests)."
    )
    redis_pool_max: int = Field(64, ge=1, description="Maximum pooled Redis connections.")
    redis_timeout_s: float = Field(0.5, gt=0, description="Redis socket and connect timeout.")

    # --- ingest --------------------------------------------------------------------------
    ingest_batch_max_events: int = Field(1000, ge=1, description="Largest accepted batch.")
    competition_cache_ttl_s: float = Field(
        5.0, ge=0, description="How long ingest trusts a cached competition."
    )
    rate_player_per_s: float = Field(10.0, gt=0, description="`scores:write` requests/s.")
    rate_player_burst: int = Field(20, ge=1, description="`scores:write` burst.")
    rate_server_per_s: float = Field(1000.0, gt=0, description="`scores:write:any` events/s.")
    rate_server_burst: int = Field(5000, ge=1, description="`scores:write:any` burst (events).")
    rate_anonymous_per_s: float = Field(20.0, gt=0, description="Per-IP requests/s (no token).")
    rate_anonymous_burst: int = Field(40, ge=1, description="Per-IP burst (no token).")
    rate_admin_per_s: float = Field(50.0, gt=0, description="`admin` requests/s.")
    rate_admin_burst: int = Field(100, ge=1, description="`admin` burst.")
    rate_lease_max_tokens: int = Field(
        32,
        ge=0,
        description="Most rate-limit tokens a replica takes from Redis in one check and spends "
        "locally (0: one Redis check per request). Only leased while the bucket stays over "
        "half full and the burst is at least 16x the lease, so tokens are never over-granted.",
    )
    rate_lease_ms: float = Field(
        100.0, gt=0, le=1000, description="How long leased rate-limit tokens stay spendable."
    )

    # --- ranker --------------------------------------------------------------------------
    ranker_batch_size: int = Field(
        5000,
        ge=1,
        description="Most events taken per ranker batch (bigger: more events/s, slower batches).",
    )
    ranker_batch_within_s: float = Field(
        0.05, gt=0, description="Longest wait to fill a ranker batch."
    )
    ranker_group_id: str = Field("podium-ranker", description="Ranker consumer group / app id.")
    ranker_period_grace_s: int = Field(
        3600, ge=0, description="Late events still count toward an ended period this long."
    )
    ranker_top_n: int = Field(10, ge=1, le=100, description="Top N carried in change messages.")
    ranker_retry_max_backoff_s: float = Field(
        5.0, gt=0, description="Longest back-off between retries of a failed batch."
    )

    # --- query ---------------------------------------------------------------------------
    query_cache_ttl_ms: int = Field(250, ge=0, le=60_000, description="Micro-cache TTL (ms).")
    query_breaker_failures: int = Field(
        5, ge=1, description="Consecutive Redis failures that open the circuit breaker."
    )
    query_breaker_reset_s: float = Field(2.0, gt=0, description="Open-breaker cool-down.")

    # --- notifier ------------------------------------------------------------------------
    notify_max_hz: float = Field(5.0, gt=0, description="Most messages/s sent to one client.")
    ws_send_timeout: float = Field(
        5.0, gt=0, description="Seconds a client may take to accept a message before closing."
    )
    ws_queue_size: int = Field(8, ge=1, description="Per-client outgoing queue bound.")
    ws_max_connections: int = Field(20_000, ge=1, description="WebSocket connections/process.")
    ws_ping_interval_s: float = Field(20.0, gt=0, description="WebSocket ping interval.")
    ws_max_message_bytes: int = Field(4096, ge=64, description="Largest client WS message.")
    ws_client_messages_per_s: float = Field(
        2.0, gt=0, description="Messages/s a WS client may send (resync, ping); more is 1008."
    )
    ws_client_message_burst: int = Field(
        10, ge=1, description="Burst of client WS messages allowed above that rate."
    )

    # --- dev stack -----------------------------------------------------------------------
    dev_data_dir: str = Field(".podium", description="Where `podium dev` keeps embedded data.")

    @field_validator("cors_allow_origins", "trusted_proxies", "jwt_secrets", mode="before")
    @classmethod
    def _csv_lists(cls, value: object) -> object:
        return _split_csv(value)

    @model_validator(mode="after")
    def _check_secrets(self) -> Settings:
        if self.env == "dev" and not self.jwt_secrets:
            self.jwt_secrets = [SecretStr(DEV_JWT_SECRET)]
        if not self.jwt_secrets:
            raise ValueError("PODIUM_JWT_SECRETS is required outside dev mode")
        if self.env != "dev":
            for secret in self.jwt_secrets:
                if len(secret.get_secret_value()) < MIN_JWT_SECRET_LENGTH:
                    raise ValueError(
                        f"PODIUM_JWT_SECRETS: every secret needs at least "
                        f"{MIN_JWT_SECRET_LENGTH} characters"
                    )
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("PODIUM_DB_POOL_MIN must not exceed PODIUM_DB_POOL_MAX")
        return self

    @property
    def signing_secret(self) -> str:
        """The secret new tokens are signed with (the first of the list)."""
        return self.jwt_secrets[0].get_secret_value()

    @property
    def verification_secrets(self) -> list[str]:
        """Every secret a token may be signed with."""
        return [secret.get_secret_value() for secret in self.jwt_secrets]


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each offending ``PODIUM_*`` variable and what is wrong with it."""
    problems = []
    for item in error.errors():
        location = "_".join(str(part) for part in item["loc"] if part != "__root__")
        message = item["msg"].removeprefix("Value error, ")
        if location:
            problems.append(f"{ENV_PREFIX}{location.upper()}: {message}")
        else:
            problems.append(message)
    return "invalid configuration: " + "; ".join(problems)


class UnknownSettingError(ValueError):
    """A ``PODIUM_*`` environment variable names no setting (most often a typo)."""


def unknown_environment_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``PODIUM_*`` variables in ``environ`` that are not settings."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    return sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment plus ``overrides``.

    Raises ``ValidationError`` for bad values and :class:`UnknownSettingError` for a
    ``PODIUM_*`` variable that is no setting, so a typo never passes silently.
    """
    unknown = unknown_environment_variables(os.environ)
    if unknown:
        raise UnknownSettingError(f"unknown setting {', '.join(unknown)}")
    return Settings(**overrides)  # type: ignore[arg-type]


def load_settings_or_exit(**overrides: object) -> Settings:
    """Build settings, or print a one-line error naming the variable and exit with status 2."""
    try:
        return load_settings(**overrides)
    except ValidationError as error:
        print(f"podium: {describe_validation_error(error)}", file=sys.stderr)
    except UnknownSettingError as error:
        print(f"podium: invalid configuration: {error}", file=sys.stderr)
    raise SystemExit(2)


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, loaded once (exits on invalid configuration)."""
    return load_settings_or_exit()


def settings_environment(settings: Settings) -> dict[str, str]:
    """``settings`` as ``PODIUM_*`` environment variables, for child processes."""
    environment = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, list):
            text = ",".join(_plain(item) for item in value)
        else:
            text = _plain(value)
        environment[f"{ENV_PREFIX}{name.upper()}"] = text
    return environment


def _plain(value: object) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
