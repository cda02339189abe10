"""Dropping cached top pages when the ranker announces a change.

The page cache's TTL already bounds staleness; the change feed makes a changed leaderboard
visible sooner. The feed is optional at start-up: if Kafka does not answer, the service
serves anyway (TTL-bounded) and keeps trying to attach in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from services.query.settings import QuerySettings
from shared.change_feed import ChangeSignal, ChangeSignalFeed, SignalHandler
from shared.tasks import cancel_and_wait

from .catalog import CompetitionCatalog
from .metrics import CHANGE_LAG, PAGE_CACHE_INVALIDATIONS
from .page_cache import PageCache

logger = logging.getLogger(__name__)

_RETRY_MIN_S = 0.5
_RETRY_MAX_S = 10.0


def change_handler(pages: PageCache, catalog: CompetitionCatalog | None = None) -> SignalHandler:
    """The feed handler: retire every cached page of the changed competition (whatever the
    message says changed, so a ``rebuilt`` competition is dropped whole too), and for a
    deleted one its cached row too (reads answer 404 at once, not after the cache TTL).

    The lag histogram compares the ranker's wall clock with ours (same host in the bench;
    across hosts it includes their skew, clipped at 0).
    """

    async def on_change(signal: ChangeSignal) -> None:
        pages.invalidate(signal.competition_id)
        if signal.deleted and catalog is not None:
            catalog.forget(signal.competition_id)
        PAGE_CACHE_INVALIDATIONS.inc()
        CHANGE_LAG.observe(max(time.time() - signal.emitted_at_s, 0.0))

    return on_change


async def _attach(feed: ChangeSignalFeed) -> None:
    delay_s = _RETRY_MIN_S
    while True:
        try:
            await feed.start()
        except Exception as error:  # Kafka down: serve on the TTL alone and try again
            logger.warning("change feed not attached (%s); retrying in %.1f s", error, delay_s)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, _RETRY_MAX_S)
        else:
            logger.info("change feed attached; cached pages follow leaderboard changes")
            return


@contextlib.asynccontextmanager
async def follow_changes(
    settings: QuerySettings, pages: PageCache, catalog: CompetitionCatalog | None = None
) -> AsyncIterator[ChangeSignalFeed]:
    """Attach a change feed in the background for the duration of the block (it only needs
    to know which competition changed, so it never parses a whole change message)."""
    feed = ChangeSignalFeed(settings, change_handler(pages, catalog))
    attaching = asyncio.create_task(_attach(feed), name="query-change-feed-attach")
    try:
        yield feed
    finally:
        await cancel_and_wait(attaching)
        await feed.stop()
