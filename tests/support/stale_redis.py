"""What the stale-Redis tests share (issue #17: a restarted Redis, a promoted cluster replica):
the workload, the ranker + query + notifier processes with one WebSocket client per board, and
the check that every view of every board equals the replay oracle."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import Popen

from websockets.exceptions import WebSocketException

from podium.settings import PlatformSettings
from soak.check import read_all_pages
from soak.http import HTTP_ERRORS, SoakClient
from soak.oracle import Message, OracleCompetition, OracleResult
from soak.readers import Subscriber
from tests.support.ranker_harness import http_service, ranker
from tests.support.servers import wait_until_ready

HEAL_BOUND_S = 5.0
"""Documented in docs/operations.md: probe interval (1 s) + one pass, with a wide margin."""
EVENTS_PER_PHASE = 400
USERS = 20
TOP_COUNT = 25  # above USERS: a WebSocket client sees the whole board
BASE = datetime(2026, 11, 20, tzinfo=UTC)
COMPETITIONS = [OracleCompetition(f"c-sum-{index}", "desc", "sum") for index in range(5)]
WINDOW = "alltime"


def sum_events(seed: int, first: int, count: int) -> list[Message]:
    """``count`` score events over the five competitions (every one moves a sum)."""
    rng = random.Random(seed)
    events: list[Message] = []
    for index in range(first, first + count):
        ts = (BASE + timedelta(minutes=index)).isoformat()
        events.append(
            {"v": 1, "kind": "score", "event_id": f"ev-{index}",
             "competition_id": rng.choice(COMPETITIONS).id, "user_id": f"u{rng.randrange(USERS)}",
             "value": rng.randrange(1, 30) / 10, "ts": ts, "received_at": ts}
        )  # fmt: skip
    return events


async def boards_differing(
    expected: OracleResult, query_url: str, subscribers: list[Subscriber]
) -> list[str]:
    """Which views of which boards differ from the oracle (empty: all equal)."""
    differing = []
    async with SoakClient(timeout_s=5.0) as client:
        for subscriber in subscribers:
            cid, want = (
                subscriber.competition_id,
                expected.ranking(subscriber.competition_id, WINDOW),
            )
            try:
                pages = await read_all_pages(client, query_url, cid, WINDOW)
                fresh = [(e["user_id"], e["score"]) for e in await subscriber.resync()]
            except (*HTTP_ERRORS, OSError, WebSocketException) as error:
                differing.append(f"{cid}: {error!r}")
                continue
            connected = [(e["user_id"], e["score"]) for e in subscriber.top]
            for view, have in (("query", pages), ("snapshot", fresh), ("connected", connected)):
                if have != want:
                    differing.append(f"{cid} {view}")
    return differing


async def wait_equal(
    expected: OracleResult, query_url: str, subscribers: list[Subscriber], timeout_s: float
) -> float:
    """Seconds until every view of every board equals the oracle; raises after ``timeout_s``."""
    started = time.monotonic()
    differing = ["not checked"]
    while time.monotonic() - started < timeout_s:
        differing = await boards_differing(expected, query_url, subscribers)
        if not differing:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"after {timeout_s} s still differing: {differing}")


@dataclass(frozen=True)
class LivePipeline:
    """The running ranker, the query API's URL and one connected client per competition."""

    ranker: Popen[bytes]
    query_url: str
    subscribers: list[Subscriber]


@contextlib.asynccontextmanager
async def live_pipeline(
    stack: PlatformSettings, logs: Path, metrics_port: int
) -> AsyncIterator[LivePipeline]:
    """Ranker, query and notifier as processes on ``stack``, with a WebSocket client on every
    competition listening throughout (stopped on the way out); logs at ``logs``-<name>.log."""
    with (
        ranker(stack, Path(f"{logs}-ranker.log"), ranker_port=metrics_port) as process,
        http_service("query", stack, "query_port", Path(f"{logs}-query.log")) as query_url,
        http_service("notifier", stack, "notifier_port", Path(f"{logs}-notifier.log")) as notifier,
    ):
        await asyncio.gather(wait_until_ready(query_url), wait_until_ready(notifier))
        ws_url = notifier.replace("http://", "ws://")
        subscribers = [Subscriber(ws_url, c.id, top_count=TOP_COUNT) for c in COMPETITIONS]
        stop = asyncio.Event()
        listening = [asyncio.create_task(s.run(stop)) for s in subscribers]
        try:
            yield LivePipeline(process, query_url, subscribers)
        finally:
            stop.set()
            await asyncio.gather(*listening, return_exceptions=True)
        assert process.poll() is None, "the ranker exited"
