"""The attack suite's stack: ingest, query and notifier as real ``podium serve`` processes.

One stack for the whole session (starting three processes per test would cost more than the
attacks): its own PostgreSQL schema, Redis prefix and topics, DEBUG logs to files (the
secret-leak test greps them), and a token registry so that every token a test sends can be
looked for in those logs afterwards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from devstack.cleanup import discard_run_data
from devstack.processes import free_port
from podium.settings import PlatformSettings
from shared.auth import issue_token
from shared.kafka import ensure_topics
from shared.migrations import migrate
from tests.conftest import TEST_JWT_SECRET, worker_log_name
from tests.support.servers import podium_command, process_environment, running_process

SERVICES = ("ingest", "query", "notifier")
ALLOWED_ORIGIN = "https://allowed.example"
OPEN_COMPETITION = "sec-open"
PRIVATE_COMPETITION = "sec-private"


@dataclass
class Stack:
    """The running services, their settings and logs, and every token handed out."""

    settings: PlatformSettings
    urls: dict[str, str]
    logs: dict[str, Path]
    tokens: list[str] = field(default_factory=list)

    def token(self, subject: str, *scopes: str, ttl_s: int = 600) -> str:
        """A valid token, remembered for the log scan."""
        return self.remember(issue_token(self.settings, subject, list(scopes), ttl_s=ttl_s))

    def remember(self, token: str) -> str:
        """Record a (possibly forged) token that a test is about to send."""
        self.tokens.append(token)
        return token

    def bearer(self, subject: str, *scopes: str) -> dict[str, str]:
        """An ``Authorization`` header with a fresh valid token."""
        return {"Authorization": f"Bearer {self.token(subject, *scopes)}"}


def stack_settings(kafka_bootstrap: str, database_url: str, redis_url: str) -> PlatformSettings:
    """Settings of the session's stack, isolated by a random id."""
    run_id = uuid.uuid4().hex[:10]
    return PlatformSettings(
        env="test",
        log_level="DEBUG",
        log_json=True,
        jwt_secrets=[TEST_JWT_SECRET],
        jwt_leeway_s=0,  # expiry is exact, so the expiry test need not wait for the leeway
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_partitions=3,
        database_url=database_url,
        redis_url=redis_url,
        db_schema=f"sec_{run_id}",
        redis_key_prefix=f"sec:{run_id}:",
        topic_score_events=f"score-events-sec-{run_id}",
        topic_changes=f"leaderboard-changes-sec-{run_id}",
        topic_dead_letters=f"score-events-sec-{run_id}.dlq",
        ranker_group_id=f"ranker-sec-{run_id}",
        cors_allow_origins=[ALLOWED_ORIGIN],
        # generous buckets: the attacks here are about auth and input, not about rate limits
        # (tests/security/test_forwarded_for.py runs its own tightly limited ingest)
        rate_admin_burst=100_000,
        rate_admin_per_s=100_000.0,
        rate_anonymous_burst=100_000,
        rate_anonymous_per_s=100_000.0,
        rate_player_burst=100_000,
        rate_player_per_s=100_000.0,
        competition_cache_ttl_s=0.0,
    )


async def _prepare(settings: PlatformSettings) -> None:
    await migrate(settings)
    await ensure_topics(settings)


async def _clean(settings: PlatformSettings) -> None:
    await discard_run_data(settings)


def _wait_ready(urls: dict[str, str], timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = dict(urls)
    with httpx.Client(timeout=2) as client:
        while waiting and time.monotonic() < deadline:
            for name, url in list(waiting.items()):
                try:
                    if client.get(f"{url}/health/ready").status_code == 200:
                        del waiting[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    if waiting:
        raise TimeoutError(f"not ready after {timeout_s} s: {sorted(waiting)}")


def _seed(stack: Stack) -> None:
    admin = stack.bearer("sec-admin", "admin")
    with httpx.Client(base_url=stack.urls["ingest"], timeout=20, headers=admin) as client:
        for competition_id, visibility in (
            (OPEN_COMPETITION, "public"),
            (PRIVATE_COMPETITION, "private"),
        ):
            created = client.post(
                "/api/v1/competitions",
                json={"id": competition_id, "name": competition_id, "visibility": visibility},
            )
            assert created.status_code == 201, created.text


@pytest.fixture(scope="session")
def stack(
    kafka_bootstrap: str, database_url: str, redis_url: str, artifacts_dir: Path
) -> Iterator[Stack]:
    """ingest, query and notifier processes sharing one configuration."""
    settings = stack_settings(kafka_bootstrap, database_url, redis_url)
    asyncio.run(_prepare(settings))
    log_dir = artifacts_dir / "security"
    log_dir.mkdir(exist_ok=True)
    ports = {service: free_port() for service in SERVICES}
    logs = {service: log_dir / worker_log_name(f"{service}.log") for service in SERVICES}
    for path in logs.values():
        path.unlink(missing_ok=True)
    environment = process_environment(
        settings, **{f"PODIUM_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    )
    try:
        with (
            running_process(podium_command("serve", "ingest"), environment, logs["ingest"]),
            running_process(podium_command("serve", "query"), environment, logs["query"]),
            running_process(podium_command("serve", "notifier"), environment, logs["notifier"]),
        ):
            urls = {service: f"http://127.0.0.1:{port}" for service, port in ports.items()}
            _wait_ready(urls)
            running = Stack(settings=settings, urls=urls, logs=logs)
            _seed(running)
            yield running
    finally:
        asyncio.run(_clean(settings))
