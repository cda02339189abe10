"""Session fixtures: the real broker (started here), PostgreSQL and Redis.

PostgreSQL and Redis are the machine's (``TEST_DATABASE_URL``, ``TEST_REDIS_URL``) when they
answer; otherwise the session starts embedded ones (``tests/support/embedded_stores.py``, the
helpers ``make run`` falls back to), says so, and stops them at its end. Only when neither the
configured store nor an embedded one can start does the session fail, loudly, with how to
start it; nothing is skipped silently. Every test gets its own PostgreSQL schema, Redis key
prefix, topics and consumer group, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from redis.asyncio import Redis

from devstack.broker import start_broker
from devstack.cleanup import discard_run_data
from devstack.processes import free_port
from podium.settings import PlatformSettings
from services.notifier.gc_pauses import unwatch_gc_pauses
from shared.auth import issue_token
from shared.db import create_pool
from shared.kafka import ensure_topics
from shared.migrations import migrate
from shared.redis_client import create_redis
from tests.support.embedded_stores import EmbeddedStore, start_postgres, start_redis

TEST_JWT_SECRET = "test-secret-0123456789-0123456789-abcdef"
DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SettingsFactory = Callable[..., PlatformSettings]

# `make test` runs two pytest-xdist workers. The tests that start whole platforms (every module
# of tests/e2e) or bound wall-clock time run in two lanes: inside a lane one after another, so
# at most two of them share the two cores at once, and the lanes are balanced by measured
# duration (~6 minutes each). Every other test is its own scope and fills whichever worker is
# free. (xdist's ``--dist loadgroup`` does not group under pytest 9 here: its node-id suffix is
# ignored, so the lanes are this scheduler's.)
LANE_OF_MODULE = {
    "tests/e2e/test_soak.py": "lane-a",
    "tests/e2e/test_competition_delete.py": "lane-a",
    "tests/e2e/test_install.py": "lane-a",
    "tests/e2e/test_notifier_browser.py": "lane-a",
    "tests/e2e/test_dev_stack.py": "lane-a",
    "tests/e2e/test_store_fallback.py": "lane-a",
    "tests/e2e/test_tracing.py": "lane-a",
    "tests/integration/test_ingest_broker_outage.py": "lane-b",
    "tests/integration/test_ingest_rate_lease.py": "lane-b",
    "tests/integration/test_query_resilience.py": "lane-b",
    "tests/integration/test_read_replicas.py": "lane-b",
    "tests/integration/test_soak_load_bounded.py": "lane-b",
    "tests/security/test_ws_abuse.py": "lane-b",
}
DEFAULT_E2E_LANE = "lane-b"  # every other tests/e2e module


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's scope scheduling with one scope per lane and one per other test (the lanes
    come first in collection order, so both start at once)."""
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            if module in LANE_OF_MODULE:
                return LANE_OF_MODULE[module]
            if module.startswith("tests/e2e/"):
                return DEFAULT_E2E_LANE
            return nodeid

    return LaneScheduling(config, log)


def worker_log_name(name: str) -> str:
    """``name`` with the xdist worker's id (``broker-gw0.log``): each worker has its own
    broker and embedded stores, and their logs must not interleave in one file."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return name
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{worker}{dot}{suffix}"


@pytest.fixture(scope="session", autouse=True)
def _no_gc_watch_after_the_session() -> Iterator[None]:
    """In-process notifier apps watch GC pauses; none may outlive the session (its warnings
    would print after pytest's summary)."""
    yield
    unwatch_gc_pauses()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave logs and screenshots (``test-artifacts/``, ignored by git)."""
    path = Path(__file__).resolve().parent.parent / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap(artifacts_dir: Path) -> Iterator[str]:
    """A tansu broker on a free port for the whole session."""
    port = free_port()
    broker = start_broker("127.0.0.1", port, log_path=artifacts_dir / worker_log_name("broker.log"))
    try:
        yield f"127.0.0.1:{port}"
    finally:
        broker.stop()


async def _postgres_answers() -> bool:
    try:
        connection = await asyncpg.connect(DATABASE_URL, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _redis_answers() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def _say(config: pytest.Config, message: str) -> None:
    """One line on the terminal, whatever pytest captures."""
    capture = config.pluginmanager.get_plugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if reporter is not None:
            reporter.write_line(f"podium tests | {message}", bold=True)
        else:
            print(f"podium tests | {message}", file=sys.stderr, flush=True)


def _embedded(
    request: pytest.FixtureRequest,
    name: str,
    configured_url: str,
    start: Callable[[str, Path], EmbeddedStore],
    log_path: Path,
    how_to_start: str,
    variable: str,
) -> Iterator[str]:
    """Start an embedded store for the session (the configured one did not answer)."""
    store: EmbeddedStore | None = None
    reason = ""
    try:
        store = start(configured_url, log_path)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
    if store is None:  # outside the except block: the message is the whole report
        pytest.fail(
            f"{name} does not answer at {configured_url} and an embedded one could not start"
            f" ({reason}; see {log_path}). Start it, e.g. {how_to_start}, or set {variable}.",
            pytrace=False,
        )
    _say(
        request.config,
        f"{name}: {configured_url} did not answer; started an embedded one at {store.url}"
        f" (pid {store.pid}, log {log_path}) for this session",
    )
    try:
        yield store.url
    finally:
        store.stop()
        _say(request.config, f"{name}: stopped the embedded one (pid {store.pid})")


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest, artifacts_dir: Path) -> Iterator[str]:
    """The machine's PostgreSQL (``TEST_DATABASE_URL``), else an embedded one."""
    if asyncio.run(_postgres_answers()):
        yield DATABASE_URL
        return
    yield from _embedded(
        request,
        "PostgreSQL",
        DATABASE_URL,
        start_postgres,
        artifacts_dir / worker_log_name("embedded-postgres.log"),
        "'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'",
        "TEST_DATABASE_URL",
    )


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest, artifacts_dir: Path) -> Iterator[str]:
    """The machine's Redis (``TEST_REDIS_URL``), else an embedded one."""
    if _redis_answers():
        yield REDIS_URL
        return
    yield from _embedded(
        request,
        "Redis",
        REDIS_URL,
        start_redis,
        artifacts_dir / worker_log_name("embedded-redis.log"),
        "'redis-server --daemonize yes --port 6379 --save \"\"'",
        "TEST_REDIS_URL",
    )


@pytest.fixture
def unique_id() -> str:
    """A short id unique to this test, for schema, key prefix, topic and group names."""
    return uuid.uuid4().hex[:12]


@pytest.fixture
def settings_factory(
    kafka_bootstrap: str, database_url: str, redis_url: str, unique_id: str
) -> SettingsFactory:
    """Build settings isolated to this test; keyword arguments override fields."""
    base: dict[str, object] = {
        "env": "test",
        "log_json": False,
        "jwt_secrets": [TEST_JWT_SECRET],
        "kafka_bootstrap_servers": kafka_bootstrap,
        "kafka_partitions": 3,
        "database_url": database_url,
        "redis_url": redis_url,
        # 5 s, not the default 0.5 s: tests check what is right, not how fast, and on two cores
        # shared with the other lane's soaks a healthy Redis can wait its turn past 0.5 s (a CI
        # run failed so, rebuilding 20,000 standings). Tests of a hung Redis set it short.
        "redis_timeout_s": 5.0,
        "db_schema": f"t_{unique_id}",
        "redis_key_prefix": f"t:{unique_id}:",
        "topic_score_events": f"score-events-{unique_id}",
        "topic_changes": f"leaderboard-changes-{unique_id}",
        "topic_dead_letters": f"score-events-{unique_id}.dlq",
        "ranker_group_id": f"ranker-{unique_id}",
    }

    def build(**overrides: object) -> PlatformSettings:
        return PlatformSettings(**{**base, **overrides})  # type: ignore[arg-type]

    return build


@pytest.fixture
async def settings(settings_factory: SettingsFactory) -> AsyncIterator[PlatformSettings]:
    """Test settings with the schema migrated and topics created; cleaned up afterwards."""
    test_settings = settings_factory()
    await migrate(test_settings)
    await ensure_topics(test_settings)
    yield test_settings
    await discard_run_data(test_settings)


@pytest.fixture
async def pool(settings: PlatformSettings) -> AsyncIterator[asyncpg.Pool]:
    """A PostgreSQL pool on the test's schema."""
    pool = await create_pool(settings)
    yield pool
    await pool.close()


@pytest.fixture
async def redis_client(settings: PlatformSettings) -> AsyncIterator[Redis]:
    """A Redis client with the test's settings (keys must use ``settings.redis_key_prefix``)."""
    client = create_redis(settings)
    yield client
    await client.aclose()


@pytest.fixture
def token_for(settings_factory: SettingsFactory) -> Callable[..., str]:
    """``token_for(sub, *scopes, ttl_s=...)`` signs a token the test services accept."""
    signer = settings_factory()

    def sign(subject: str, *scopes: str, ttl_s: int = 3600) -> str:
        return issue_token(signer, subject, list(scopes), ttl_s=ttl_s)

    return sign
