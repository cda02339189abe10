"""The soak's load generator stays bounded when every ingest replica is down (issue #16).

For 10 s both "replicas" accept connections but never answer in time (as a stopped or
overloaded process does), then they come back. The old generator queued every retry inside
the HTTP client's pool, whose request assignment is quadratic in queued requests, and starved
itself for minutes. The bounded one keeps at most its window of requests in flight, stays
responsive, records that it fell behind its schedule, and delivers every event once the
replicas answer again.

The replicas here are stand-ins that answer like ingest (202 per event, batch results); the
test is about the client, so nothing behind them matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack.processes import free_port
from soak.http import SoakClient
from soak.load import WriteLoad

DOWN_S = 10.0
DURATION_S = 12.0
RATE_EPS = 200.0
WINDOW = 16
CLIENT_TIMEOUT_S = 2.0


def _replica(up_at: float, seen: dict[str, int]) -> Starlette:
    async def hang_while_down() -> bool:
        if time.monotonic() < up_at:
            await asyncio.sleep(CLIENT_TIMEOUT_S * 2)  # the client gives up first
            return True
        return False

    async def single(request: Request) -> JSONResponse:
        if await hang_while_down():
            return JSONResponse({}, status_code=503)
        event = await request.json()
        seen[event["event_id"]] = seen.get(event["event_id"], 0) + 1
        return JSONResponse({"event_id": event["event_id"]}, status_code=202)

    async def batch(request: Request) -> JSONResponse:
        if await hang_while_down():
            return JSONResponse({}, status_code=503)
        events = (await request.json())["events"]
        for event in events:
            seen[event["event_id"]] = seen.get(event["event_id"], 0) + 1
        results = [{"event_id": e["event_id"], "status": "accepted"} for e in events]
        return JSONResponse({"results": results}, status_code=202)

    return Starlette(
        routes=[
            Route("/api/v1/scores", single, methods=["POST"]),
            Route("/api/v1/scores/batch", batch, methods=["POST"]),
        ]
    )


async def _loop_lag_s(stop: asyncio.Event) -> float:
    """The longest the event loop was late for a 50 ms tick (a starved client is late)."""
    worst_s = 0.0
    while not stop.is_set():
        started = time.monotonic()
        await asyncio.sleep(0.05)
        worst_s = max(worst_s, time.monotonic() - started - 0.05)
    return worst_s


async def test_load_stays_bounded_while_every_replica_is_down() -> None:
    seen: dict[str, int] = {}
    up_at = time.monotonic() + DOWN_S
    servers = []
    for _ in range(2):
        config = uvicorn.Config(
            _replica(up_at, seen), host="127.0.0.1", port=free_port(), log_config=None
        )
        servers.append(uvicorn.Server(config))
    tasks = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        await asyncio.sleep(0.05)
    stop = asyncio.Event()
    lag = asyncio.create_task(_loop_lag_s(stop))
    load = WriteLoad(
        [f"http://127.0.0.1:{server.config.port}" for server in servers],
        "token",
        RATE_EPS,
        users_per_competition=50,
        seed=7,
        batch_share=0.2,
        max_in_flight=WINDOW,
    )
    started = time.monotonic()
    try:
        async with SoakClient(timeout_s=CLIENT_TIMEOUT_S, max_connections=WINDOW * 2) as client:
            await asyncio.wait_for(load.run(client, DURATION_S), timeout=DURATION_S + 60)
    finally:
        stop.set()
        for server in servers:
            server.should_exit = True
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
    worst_lag_s = await lag
    stats = load.stats

    assert stats.offered >= RATE_EPS * DURATION_S * 0.95
    assert set(stats.accepted) == set(seen)
    assert len(stats.accepted) == stats.offered  # every offered event delivered once down ended
    assert stats.retries > 0
    assert 0 < stats.max_in_flight_seen <= WINDOW
    assert stats.behind_s, "10 s of a full window must put the client behind its schedule"
    assert worst_lag_s < 0.5, f"the client's loop stalled for {worst_lag_s:.2f} s"
    assert time.monotonic() - started < DURATION_S + 60
    rates = stats.rates()
    assert sum(row["offered"] for row in rates) == stats.offered
    assert sum(row["sent"] for row in rates) == stats.offered
    assert sum(row["accepted"] for row in rates) == len(stats.accepted)
