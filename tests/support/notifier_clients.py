"""Real WebSocket clients of the notifier, for tests."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

RECEIVE_TIMEOUT_S = 5.0


def ws_url(base_url: str, competition_id: str, query: str = "") -> str:
    """The leaderboard socket URL of ``competition_id`` on the server at ``base_url``."""
    url = base_url.replace("http://", "ws://") + f"/ws/leaderboards/{competition_id}"
    return f"{url}?{query}" if query else url


def connect(url: str, **options: Any) -> websockets.asyncio.client.connect:
    """A client as a browser would be, without compression (the server offers none)."""
    return websockets.connect(url, compression=None, open_timeout=20, **options)


async def receive(ws: ClientConnection, timeout_s: float = RECEIVE_TIMEOUT_S) -> dict[str, Any]:
    """The next message, parsed."""
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    return message


async def closed_with(
    ws: ClientConnection, timeout_s: float = RECEIVE_TIMEOUT_S
) -> tuple[int, str, list[Any]]:
    """Read until the server closes: its close code, reason and every frame before it."""
    frames = []
    while True:
        try:
            frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), timeout_s)))
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                raise AssertionError("the server closed without a close frame") from closed
            return closed.rcvd.code, closed.rcvd.reason, frames


def leaders(message: dict[str, Any]) -> list[tuple[str, float]]:
    """``(user_id, score)`` of a message's top list."""
    return [(entry["user_id"], entry["score"]) for entry in message["top"]]
