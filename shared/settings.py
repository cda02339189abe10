"""Podium configuration: settings classes read from ``PODIUM_*`` environment variables.

:class:`CommonSettings` holds what two or more services read (the process, the HTTP edge,
auth, Kafka, PostgreSQL, Redis); each service subclasses it in its own package with the fields
only it reads (``services/<name>/settings.py``), so a service validates its own variables and
nobody else's. Which ``PODIUM_*`` names exist at all is known only where every class is in
sight, the composition root (``podium/settings.py``): it refuses unknown names before it builds
a service's class. Nothing else in the code base reads the environment. The fields are flat
(``PODIUM_INGEST_PORT``, not ``PODIUM_INGEST__PORT``) so that the variable names stay short and
greppable; names start with the part of the system they configure.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PODIUM_"
MIN_JWT_SECRET_LENGTH = 32
DEV_JWT_SECRET = "podium-dev-secret-do-not-use-in-production-0123456789"  # noqa: S105


def _split_csv(value: object) -> object:
    """Accept ``a,b,c`` (or a JSON-less single value) for list settings."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaSeparated = Annotated[list[str], NoDecode, BeforeValidator(_split_csv)]
"""The type of a list setting, written ``a,b,c`` in its variable (any settings class)."""


class CommonSettings(BaseSettings):
    """What two or more services read; every service's settings class extends it.

    A field lives here when more than one service (or a shared module serving several) reads
    it; a field only one service reads lives in that service's class. Required values in
    production have no usable default. ``extra="forbid"`` refuses unknown keyword arguments;
    unknown *variables* are refused by the composition root, which knows every class.
    """

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
    http_workers: int = Field(
        1, ge=1, le=64, description="uvicorn worker processes per HTTP service."
    )
    tls_certfile: str | None = Field(None, description="TLS certificate file (direct exposure).")
    tls_keyfile: str | None = Field(None, description="TLS private key file (direct exposure).")
    shutdown_grace_s: float = Field(
        10.0, gt=0, description="Seconds a service waits for in-flight work on shutdown."
    )

    # --- HTTP edge -----------------------------------------------------------------------
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest accepted request body (bytes); larger is 413."
    )
    cors_allow_origins: CommaSeparated = Field(
        default_factory=list, description="Comma-separated CORS origin allowlist (empty: none)."
    )
    http_body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a request body once its headers arrived; "
        "slower is 408 (uvicorn has no body-read timeout).",
    )
    trusted_proxies: CommaSeparated = Field(
        default_factory=list,
        description="Comma-separated proxy addresses whose X-Forwarded-For is believed.",
    )
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
    rate_check_timeout_s: float = Field(
        0.1,
        gt=0,
        description="Longest a read limit (query requests, notifier connects) waits for its "
        "Redis check before the request goes on unlimited (fail open): a slow or hung Redis "
        "must not add its timeout to every read on top of the read's own.",
    )

    # --- auth ----------------------------------------------------------------------------
    jwt_secrets: Annotated[list[SecretStr], NoDecode, BeforeValidator(_split_csv)] = Field(
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
    kafka_gap_wait_s: float = Field(
        2.0,
        ge=0,
        description="How long a consumer (ranker, change feeds) fetches a partition again whose"
        " fetch skipped offsets before it takes the gap as real (0: at once). Topics written"
        " without transactions have none, but a broker can hand out a later batch before an"
        " earlier one is readable (tansu does, with two producers on a partition): moving on"
        " would never read it. Transaction markers leave real gaps: each then costs this wait.",
    )
    kafka_session_timeout_ms: int = Field(
        6000, ge=1000, description="Consumer group session timeout (short in dev: fast joins)."
    )
    kafka_heartbeat_interval_ms: int = Field(
        1000, ge=100, description="Consumer group heartbeat interval."
    )
    # 10, not 50: tansu answered a change 50 ms late at worst with 50 (p90 19 ms), 9 ms with
    # 10, for ~2.5% more of a core per idle feed (docs/performance.md, freshness section)
    change_feed_fetch_wait_ms: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Longest wait of a leaderboard-changes fetch (query, notifier): on the dev"
        " broker it bounds how late a change is heard; Kafka answers on data, so there it only"
        " sets how often an idle feed asks.",
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
    db_schema: str = Field(
        "podium", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="PostgreSQL schema of Podium."
    )
    db_pool_min: int = Field(1, ge=0, description="Minimum pooled PostgreSQL connections.")
    db_pool_max: int = Field(10, ge=1, description="Maximum pooled PostgreSQL connections.")
    db_connect_timeout_s: float = Field(3.0, gt=0, description="PostgreSQL connect timeout.")
    db_command_timeout_s: float = Field(10.0, gt=0, description="PostgreSQL statement timeout.")
    db_plan_cache_mode: Literal["auto", "force_custom_plan", "force_generic_plan"] = Field(
        "force_custom_plan",
        description="PostgreSQL's plan_cache_mode for Podium's connections. Podium's statements"
        " are key lookups whose best plan depends on the array they are given and on the"
        " table's size now; with PostgreSQL's default (auto) a statement's cached generic plan,"
        " made while a table was small (a new week partition of score_events, or a new"
        " schema), kept scanning it whole as it grew: the ranker's event-id lookup went from"
        " 15 ms to seconds per batch at 60,000 rows (until an ANALYZE, never with autovacuum"
        " off). A custom plan per execution costs well under a millisecond of planning.",
    )
    database_read_url: Annotated[list[SecretStr], NoDecode, BeforeValidator(_split_csv)] = Field(
        default_factory=list,
        description="Comma-separated DSNs of streaming read replicas of PODIUM_DATABASE_URL,"
        " used in turn by the read paths (query reads, notifier lookups, the reconciler's"
        " version scan); a replica down or lagging is skipped for the primary. Rebuilds of"
        " Redis always read the primary. Empty: every read goes to the primary.",
    )
    database_max_replica_lag_s: float = Field(
        5.0,
        gt=0,
        description="A read replica further behind the primary than this (seconds) is skipped"
        " until it catches up.",
    )
    database_replica_check_interval_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often each read replica's health and lag are checked (in the"
        " background, off the request path).",
    )

    # --- Redis ---------------------------------------------------------------------------
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:6379/0"), description="Redis URL (the ranking index)."
    )
    redis_key_prefix: str = Field(
        "podium:", description="Prefix of every Redis key (isolates tenants and tests)."
    )
    redis_pool_max: int = Field(64, ge=1, description="Maximum pooled Redis connections.")
    redis_timeout_s: float = Field(0.5, gt=0, description="Redis socket and connect timeout.")
    redis_cluster: bool = Field(
        False,
        description="Use a Redis Cluster: PODIUM_REDIS_URL names its seed node(s), comma-separated"
        " (redis://host:port[,redis://host:port...]); the pool limit is per node.",
    )

    # --- read by several services -------------------------------------------------------
    competition_cache_ttl_s: float = Field(
        5.0, ge=0, description="How long ingest, query and notifier trust a cached competition."
    )
    ranker_top_n: int = Field(
        10,
        ge=1,
        le=100,
        description="Top N carried in change messages (the ranker writes it; the notifier "
        "accepts subscriptions up to it).",
    )
    dedup_horizon_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Events whose ts is older than this many days are refused by ingest and"
        " dead-lettered by the ranker, so `podium prune` can drop older event rows and dedup"
        " stays exact for everything accepted.",
    )

    @model_validator(mode="after")
    def _check_secrets(self) -> Self:
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


def settings_environment(settings: CommonSettings) -> dict[str, str]:
    """``settings`` (every field of its class) as ``PODIUM_*`` variables, for child processes."""
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
