"""The notifier with 100,000 competitions (issue #18): what one process absorbs of the feed.

Every notifier process reads every change message of every competition (the change feed has
no consumer group: each process fans out to its own sockets), so the change rate one process
can take bounds the whole platform's, however many competitions there are and wherever their
clients are. Here: a private broker and the configured PostgreSQL and Redis; ``competitions``
competitions (default 100,000) in PostgreSQL; one ``podium serve notifier`` process with
``rooms`` WebSocket clients on as many distinct competitions (a room each); then ``messages``
change messages (default 200,000, the ranker's own JSON: one window, a top of 10) for
competitions drawn at random from all of them are published as fast as the producer goes.
Figures: the notifier's CPU per message (``/proc``, not wall clock: the cores are shared; its
idle rate measured just before is taken off), the messages per second it delivered to its
handler (its ``podium_change_feed_messages_total{outcome="delivered"}``), the producer's rate
(the notifier keeping up shows as the same rate), frames the clients received, and RSS per
room.

    .venv/bin/python -m bench.notifier_scale_micro --competitions 100000 --rooms 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import websockets
from websockets.asyncio.client import ClientConnection

from bench.server_cpu import cpu_seconds
from bench.stack import BenchStack, bench_settings
from services.settings import AllServicesSettings
from shared.db import create_pool
from shared.kafka import create_producer

_DELIVERED = re.compile(r'^podium_change_feed_messages_total\{outcome="delivered"\} (\S+)$', re.M)
_TOP_SIZE = 10
_IDLE_S = 2.0
_STALL_S = 20.0  # no message delivered for this long: stop waiting
_POLL_S = 0.2
_CONNECTS_IN_FLIGHT = 50


def _competition_id(index: int) -> str:
    return f"n{index:06d}"


async def _create_competitions(settings: AllServicesSettings, count: int) -> None:
    """``count`` competitions straight into PostgreSQL (COPY: the API would take minutes)."""
    pool = await create_pool(settings)
    try:
        async with pool.acquire() as connection:
            await connection.copy_records_to_table(
                "competitions",
                records=[
                    (_competition_id(index), _competition_id(index), "desc", "best", "none")
                    for index in range(count)
                ],
                columns=["id", "name", "sort_order", "operator", "reset"],
                schema_name=settings.db_schema,
            )
    finally:
        await pool.close()


def _message(competition_id: str, version: int, emitted_at: str) -> bytes:
    """A change message as the ranker publishes it: one window, its top of 10."""
    top = [
        {"rank": rank, "user_id": f"u{rank}", "score": float(1000 * version - rank)}
        for rank in range(1, _TOP_SIZE + 1)
    ]
    return orjson.dumps(
        {
            "v": 1,
            "competition_id": competition_id,
            "version": version,
            "emitted_at": emitted_at,
            "windows": [
                {
                    "window": "alltime",
                    "changed": [{"user_id": "u1", "score": top[0]["score"], "rank": 1}],
                    "top_changed": True,
                    "top": top,
                    "total": _TOP_SIZE,
                }
            ],
        }
    )


async def _delivered(http: httpx.AsyncClient, notifier_url: str) -> float:
    text = (await http.get(f"{notifier_url}/metrics")).text
    match = _DELIVERED.search(text)
    return float(match.group(1)) if match else 0.0


class _Clients:
    """``rooms`` WebSocket clients, one per competition, counting the frames they receive
    (each reads with one ``async for``: no timer per client, so 10,000 of them cost the
    bench's process next to nothing while they wait)."""

    def __init__(self, notifier_url: str, competition_ids: list[str]) -> None:
        self._base = notifier_url.replace("http://", "ws://") + "/ws/leaderboards/"
        self._ids = competition_ids
        self.frames = 0
        self.subscribed = 0
        self._sockets: list[ClientConnection] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> float:
        """Connect every client and wait for each one's snapshot; seconds it took."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(_CONNECTS_IN_FLIGHT)
        await asyncio.gather(*(self._connect(cid, gate) for cid in self._ids))
        self._tasks = [asyncio.create_task(self._count(socket)) for socket in self._sockets]
        return time.perf_counter() - started

    async def _connect(self, cid: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            socket = await websockets.connect(self._base + cid, compression=None, open_timeout=60)
            self._sockets.append(socket)
            snapshot = orjson.loads(await socket.recv())
            if snapshot.get("type") != "snapshot":
                raise RuntimeError(f"{cid}: first frame {snapshot!r}")
            self.subscribed += 1

    async def _count(self, socket: ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for _frame in socket:
                self.frames += 1

    async def close(self) -> None:
        await asyncio.gather(*(socket.close() for socket in self._sockets))
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _publish(settings: AllServicesSettings, competitions: int, messages: int) -> float:
    """Publish ``messages`` change messages over random competitions; seconds it took."""
    rng = random.Random(18)
    versions: dict[str, int] = {}
    producer = create_producer(settings, linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        emitted_at = datetime.now(UTC).isoformat()
        sends = []
        for index in range(messages):
            cid = _competition_id(rng.randrange(competitions))
            versions[cid] = versions.get(cid, 0) + 1
            sends.append(
                await producer.send(
                    settings.topic_changes,
                    key=cid.encode(),
                    value=_message(cid, versions[cid], emitted_at),
                )
            )
            if index % 1000 == 999:
                emitted_at = datetime.now(UTC).isoformat()
        await asyncio.gather(*sends)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def run(competitions: int, rooms: int, messages: int, work_dir: Path) -> dict[str, Any]:
    """Set up, open the rooms, publish, wait until the notifier delivered every message."""
    run_id = f"{random.getrandbits(32):08x}"
    base = AllServicesSettings(env="dev", log_level="WARNING")  # as `make bench` runs
    stack = BenchStack(bench_settings(base, run_id), work_dir / run_id, run_id)
    try:
        await stack.start()
        await _create_competitions(stack.settings, competitions)
        notifier = await stack.serve("notifier", "notifier")
        pid = notifier.process.process.pid
        process = psutil.Process(pid)
        rss_before = process.memory_info().rss
        room_ids = [
            _competition_id(index) for index in range(0, competitions, competitions // rooms)
        ]
        clients = _Clients(notifier.url, room_ids[:rooms])
        async with httpx.AsyncClient(timeout=10) as http:
            connect_cpu = cpu_seconds(pid) or 0.0
            connect_s = await clients.open()
            connect_cpu = (cpu_seconds(pid) or 0.0) - connect_cpu
            await asyncio.sleep(1.0)  # past the snapshots' own work
            rss_rooms = process.memory_info().rss
            before = await _delivered(http, notifier.url)
            idle_cpu = cpu_seconds(pid) or 0.0
            await asyncio.sleep(_IDLE_S)
            cpu_start = cpu_seconds(pid) or 0.0
            idle_rate = (cpu_start - idle_cpu) / _IDLE_S
            started = time.perf_counter()
            publish_s = await _publish(stack.settings, competitions, messages)
            delivered, last_change = before, time.perf_counter()
            while delivered - before < messages:
                await asyncio.sleep(_POLL_S)
                now_delivered = await _delivered(http, notifier.url)
                if now_delivered > delivered:
                    delivered, last_change = now_delivered, time.perf_counter()
                elif time.perf_counter() - last_change > _STALL_S:
                    break
            drained_s = last_change - started
            cpu_s = (cpu_seconds(pid) or 0.0) - cpu_start - idle_rate * drained_s
            await asyncio.sleep(1.0)  # the last frames
            frames = clients.frames
            await clients.close()
        count = int(delivered - before)
        return {
            "competitions": competitions,
            "rooms": clients.subscribed,
            "messages_published": messages,
            "messages_delivered": count,
            "publish_per_s": round(messages / publish_s),
            "delivered_per_s": round(count / drained_s) if drained_s > 0 else None,
            "notifier_cpu_us_per_message": round(cpu_s * 1e6 / count, 1) if count else None,
            "notifier_idle_cpu_share": round(idle_rate, 3),
            "frames_received": frames,
            "rooms_connect_s": round(connect_s, 2),
            "notifier_cpu_ms_per_room_opened": round(connect_cpu * 1000 / max(rooms, 1), 2),
            "rss_per_room_kib": round((rss_rooms - rss_before) / max(rooms, 1) / 1024, 1),
        }
    finally:
        await stack.close()


def main() -> None:
    """Run once and print (and optionally write) the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--competitions", type=int, default=100_000)
    parser.add_argument("--rooms", type=int, default=1_000, help="clients, one per competition")
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--work-dir", default=".podium/bench/notifier-scale")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = asyncio.run(run(args.competitions, args.rooms, args.messages, Path(args.work_dir)))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
