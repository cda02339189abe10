"""The read load: query API reads and WebSocket subscribers that reconnect when dropped."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

from soak.http import HTTP_ERRORS, SoakClient
from soak.load import COMPETITIONS, LoadStats, RequestRecord

logger = logging.getLogger(__name__)


class ReadLoad:
    """Reads top pages and single ranks from the query replicas (in turn) at a steady rate."""

    def __init__(
        self, query_urls: list[str], rate_rps: float, users: int, stats: LoadStats, seed: int
    ) -> None:
        self.query_urls = query_urls
        self.rate_rps = rate_rps
        self.users = users
        self.stats = stats
        self.rng = random.Random(seed)  # noqa: S311 - load shape, not security

    async def run(self, client: SoakClient, stop: asyncio.Event) -> None:
        """Read until ``stop`` is set."""
        pause_s = 1.0 / self.rate_rps
        replicas = itertools.cycle(self.query_urls)
        while not stop.is_set():
            competition = self.rng.choice(COMPETITIONS).id
            if self.rng.random() < 0.5:
                path = f"/api/v1/leaderboards/{competition}/top?limit=10"
            else:
                path = f"/api/v1/leaderboards/{competition}/users/u{self.rng.randrange(self.users)}"
            started = time.monotonic()
            try:
                response = await client.get(next(replicas) + path)
                status = response.status_code
            except HTTP_ERRORS:
                status = 0
            self.stats.requests.append(
                RequestRecord("read", started, time.monotonic() - started, status)
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), pause_s)


@dataclass
class Subscriber:
    """A WebSocket client of one competition that keeps the latest top it was sent."""

    url: str
    competition_id: str
    top_count: int = 10
    top: list[dict[str, Any]] = field(default_factory=list)
    version: int = 0
    snapshots: int = 0
    messages: int = 0
    connected_at: float = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        """Stay subscribed until ``stop``, reconnecting with back-off when dropped."""
        backoff_s = 0.2
        while not stop.is_set():
            try:
                async with websockets.connect(self._socket_url(), open_timeout=5) as socket:
                    self.connected_at = time.monotonic()
                    backoff_s = 0.2
                    await self._read(socket, stop)
            except (TimeoutError, OSError, websockets.WebSocketException):
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff_s)
                backoff_s = min(backoff_s * 2, 2.0)

    async def _read(self, socket: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(socket.recv(), 0.5)
            except TimeoutError:
                continue
            message = orjson.loads(raw)
            self.messages += 1
            if message.get("type") == "snapshot":
                self.snapshots += 1
            if "top" in message and message["top"] is not None:
                self.top = message["top"]
            self.version = max(self.version, int(message.get("version", 0)))

    async def resync(self) -> list[dict[str, Any]]:
        """A fresh snapshot on a new connection (what a reconnecting client would see)."""
        async with websockets.connect(self._socket_url(), open_timeout=5) as socket:
            message = orjson.loads(await asyncio.wait_for(socket.recv(), 5))
        top: list[dict[str, Any]] = message.get("top") or []
        return top

    def _socket_url(self) -> str:
        return f"{self.url}/ws/leaderboards/{self.competition_id}?top={self.top_count}"
