"""Notifier fan-out: 1k / 5k / 10k WebSocket clients on one process.

Every client subscribes to one competition; a probe event with a new best score is posted and
each client's latency is from the probe's 202 to the first frame naming the probe's user.
Clients only timestamp raw frames while the probes run; matching happens afterwards so the
client side spends as little CPU as possible during the measurement.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psutil
import websockets
from websockets.asyncio.client import ClientConnection

from bench.config import BenchConfig
from bench.measure import latency_summary

CONNECT_CONCURRENCY = 100
SETTLE_S = 1.0
DRAIN_S = 2.0


@dataclass
class Client:
    """One subscriber: its connection and the frames it received (monotonic time, bytes)."""

    frames: list[tuple[float, bytes | str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


async def _run_client(url: str, client: Client, connected: asyncio.Queue[bool]) -> None:
    try:
        async with websockets.connect(
            url, compression=None, open_timeout=60, ping_interval=None, max_queue=None
        ) as ws:
            await ws.recv()  # the snapshot
            await connected.put(True)
            await _collect(ws, client)
    except (OSError, TimeoutError, websockets.WebSocketException):
        await connected.put(False)


async def _collect(ws: ClientConnection, client: Client) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for message in ws:
            client.frames.append((time.monotonic(), message))


async def _connect(url: str, clients: list[Client], count: int) -> int:
    """Open ``count`` more clients, at most ``CONNECT_CONCURRENCY`` handshakes at a time."""
    connected: asyncio.Queue[bool] = asyncio.Queue()
    opened = 0
    in_flight = 0
    for _ in range(count):
        if in_flight >= CONNECT_CONCURRENCY:
            opened += await connected.get()
            in_flight -= 1
        client = Client()
        client.task = asyncio.create_task(_run_client(url, client, connected))
        clients.append(client)
        in_flight += 1
    while in_flight:
        opened += await connected.get()
        in_flight -= 1
    return opened


async def _probe(
    http: httpx.AsyncClient, ingest_url: str, token: str, cid: str, user: str, value: float
) -> float:
    response = await http.post(
        f"{ingest_url}/api/v1/scores",
        json={"event_id": user, "competition_id": cid, "user_id": user, "value": value},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return time.monotonic()


def _latencies(clients: list[Client], probes: list[tuple[str, float]]) -> tuple[list[float], int]:
    samples: list[float] = []
    missed = 0
    for client in clients:
        for user, accepted in probes:
            needle = f'"{user}"'
            seen = next(
                (
                    at
                    for at, frame in client.frames
                    if needle in (frame if isinstance(frame, str) else frame.decode())
                ),
                None,
            )
            if seen is None:
                missed += 1
            else:
                samples.append((seen - accepted) * 1000)
    return samples, missed


def _per_probe(clients: list[Client], probes: list[tuple[str, float]]) -> list[dict[str, float]]:
    """Per probe: the first and the last client's latency (ms). The first is roughly the
    pipeline (ingest → ranker → change feed), last minus first the fan-out to every client."""
    spans: list[dict[str, float]] = []
    for user, accepted in probes:
        needle = f'"{user}"'
        seen = [
            next(
                (
                    at
                    for at, frame in client.frames
                    if needle in (frame if isinstance(frame, str) else frame.decode())
                ),
                None,
            )
            for client in clients
        ]
        times = [at for at in seen if at is not None]
        if times:
            spans.append(
                {
                    "first_ms": round((min(times) - accepted) * 1000, 1),
                    "last_ms": round((max(times) - accepted) * 1000, 1),
                }
            )
    return spans


async def run_notifier_phase(
    notifier_url: str,
    notifier_pid: int,
    ingest_url: str,
    token: str,
    cid: str,
    tag: str,
    config: BenchConfig,
) -> dict[str, Any]:
    """Grow the subscriber count level by level; probe latency and memory at each."""
    url = notifier_url.replace("http://", "ws://") + f"/ws/leaderboards/{cid}?top=10"
    process = psutil.Process(notifier_pid)
    baseline_rss = process.memory_info().rss
    clients: list[Client] = []
    levels: dict[str, Any] = {}
    value = 1e12
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            for level in config.notifier_levels:
                opened = await _connect(url, clients, level - len(clients))
                await asyncio.sleep(SETTLE_S)
                rss = process.memory_info().rss
                for client in clients:
                    client.frames.clear()
                probes = []
                for index in range(config.notifier_probes):
                    value += 1
                    user = f"{tag}-n{level}-{index}"
                    probes.append((user, await _probe(http, ingest_url, token, cid, user, value)))
                    await asyncio.sleep(config.notifier_probe_interval_s)
                await asyncio.sleep(DRAIN_S)
                samples, missed = _latencies(clients, probes)
                live = sum(1 for client in clients if client.task and not client.task.done())
                levels[str(level)] = {
                    "clients": live,
                    "opened_now": opened,
                    "rss_mb": round(rss / 2**20, 1),
                    "bytes_per_connection": round((rss - baseline_rss) / max(live, 1)),
                    "missed": missed,
                    **latency_summary(samples),
                    "probes": _per_probe(clients, probes),
                }
    finally:
        for client in clients:
            if client.task is not None:
                client.task.cancel()
        await asyncio.gather(
            *(client.task for client in clients if client.task), return_exceptions=True
        )
    return {"baseline_rss_mb": round(baseline_rss / 2**20, 1), "levels": levels}
