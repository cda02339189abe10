"""The ranker's resources, its reconciler and its small HTTP side: ``/health/*``, ``/metrics``.

The HTTP app is served by uvicorn on the faust worker's own event loop (one loop for
everything, so the pools are usable from the agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import uvicorn

from services.ranker.applier import BatchApplier
from services.ranker.reconcile import reconciling
from services.ranker.settings import RankerSettings
from shared.event_partitions import maintain_partitions
from shared.http.app import create_service_app
from shared.http.health import ReadinessCheck
from shared.http.server import uvicorn_config
from shared.resources import open_resources

SERVICE = "ranker"
logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the faust worker owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serve_health(
    settings: RankerSettings, readiness_checks: dict[str, ReadinessCheck]
) -> AsyncIterator[None]:
    """Serve the health and metrics routes on ``PODIUM_RANKER_PORT`` while the block runs."""
    app = create_service_app(SERVICE, settings, routes=[])
    app.state.readiness_checks = readiness_checks
    server = _Server(uvicorn_config(app, settings, settings.ranker_port, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 5)


@contextlib.asynccontextmanager
async def ranker_runtime(settings: RankerSettings) -> AsyncIterator[BatchApplier]:
    """Open PostgreSQL, Redis and the producer and serve health; yields the batch applier."""
    async with open_resources(
        settings, postgres=True, read_replicas=True, redis=True, producer=True
    ) as resources:
        await create_partitions(settings, resources.require_pool())
        applier = BatchApplier(
            settings,
            resources.require_pool(),
            resources.require_redis(),
            resources.require_producer(),
        )
        async with (
            serve_health(settings, dict(resources.readiness_checks)),
            reconciling(
                settings,
                resources.require_pool(),
                resources.require_redis(),
                resources.require_producer(),
                read_pool=resources.require_read_pool(),
            ),
        ):
            yield applier


async def create_partitions(settings: RankerSettings, pool: asyncpg.Pool) -> None:
    """Create this and the coming weeks' ``score_events`` partitions (never drops any).

    Best effort: without them rows land in the DEFAULT partition and the next maintenance run
    moves them, so a lock timeout (a backup or a prune holding the table) is only logged.
    """
    try:
        async with pool.acquire() as connection:
            await maintain_partitions(
                connection,
                horizon=timedelta(days=settings.dedup_horizon_days),
                now=datetime.now(UTC),
                prune=False,
            )
    except (asyncpg.PostgresError, OSError) as error:
        logger.warning("could not create score_events partitions (%s); will use DEFAULT", error)
