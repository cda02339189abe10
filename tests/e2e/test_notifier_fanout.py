"""Fan-out under load: a stuck client among 100 healthy ones, and 1,000 clients on one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
from prometheus_client import REGISTRY
from uvicorn.importer import import_from_string
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from devstack.processes import free_port
from podium.settings import PlatformSettings
from services.notifier.app import create_app, websocket_limits
from services.notifier.wire import FrameWriterProtocol
from tests.support.notifier_clients import closed_with, connect, leaders, receive, ws_url
from tests.support.notifier_driver import RankerStandIn, ranker_stand_in
from tests.support.servers import (
    podium_command,
    process_environment,
    running_app,
    running_process,
    wait_until_ready,
)


@pytest.fixture
async def ranker(settings: PlatformSettings) -> AsyncIterator[RankerStandIn]:
    async with ranker_stand_in(settings) as stand_in:
        yield stand_in


def closes(reason: str) -> float:
    return REGISTRY.get_sample_value("podium_notifier_closes_total", {"reason": reason}) or 0.0


class Watcher:
    """A healthy client: reads every frame and remembers the versions and the latest state."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.versions: list[int] = []
        self.latest: dict[str, Any] = {}
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                message = orjson.loads(frame)
                self.versions.append(message["version"])
                self.latest.update(message)


async def stuck_client(url: str) -> ClientConnection:
    """A client that reads nothing: tiny receive buffer, and its library stops after 1 frame."""
    address = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (address.hostname, address.port))
    return await connect(url, sock=sock, max_queue=1)


async def test_stuck_client_is_closed_while_100_others_get_every_latest_state(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    tuned = settings.model_copy(
        update={"ws_send_timeout": 1.0, "notify_max_hz": 20.0, "ranker_top_n": 100}
    )
    ranker.settings = tuned
    competition = await ranker.competition("crowd")
    users = [f"player-{i:03d}-" + "x" * 48 for i in range(100)]
    await ranker.set_scores(competition, {user: float(i) for i, user in enumerate(users)})
    slow_closes = closes("slow")
    async with running_app(create_app(tuned), tuned) as base_url:
        url = ws_url(base_url, "crowd", "top=3")
        watchers = []
        for _ in range(100):
            ws = await connect(url)
            watchers.append(Watcher(ws))
        stuck = await stuck_client(ws_url(base_url, "crowd", "top=100"))
        try:
            # change the leader until the server gives up on the stuck client
            score = 1000.0
            deadline = time.monotonic() + 60
            while closes("slow") == slow_closes:
                assert time.monotonic() < deadline, "the stuck client was never closed"
                score += 1
                await ranker.set_scores(competition, {users[int(score) % 100]: score})
            code, reason, _ = await closed_with(stuck, timeout_s=10)
            assert code == 1013
            assert "did not take a message" in reason

            final = await ranker.set_scores(competition, {"the-winner": 10_000.0})
            deadline = time.monotonic() + 15
            while any(w.latest.get("version") != final.version for w in watchers):
                assert time.monotonic() < deadline, "a healthy client missed the latest state"
                await asyncio.sleep(0.05)
            for watcher in watchers:
                assert leaders(watcher.latest)[0] == ("the-winner", 10_000.0)
                assert watcher.versions == sorted(set(watcher.versions))
                assert len(watcher.versions) > 3  # it kept receiving during the burst
        finally:
            await stuck.close()
            for watcher in watchers:
                await watcher.ws.close()
                await watcher.task


async def test_1000_clients_on_one_process_all_receive_the_update(
    settings: PlatformSettings, ranker: RankerStandIn, artifacts_dir: Path
) -> None:
    served = settings.model_copy(update={"notifier_port": free_port()})
    competition = await ranker.competition("stadium")
    await ranker.set_scores(competition, {"ann": 10.0, "bob": 5.0})
    log = artifacts_dir / "notifier-1000-clients.log"
    with running_process(podium_command("serve", "notifier"), process_environment(served), log):
        base_url = f"http://127.0.0.1:{served.notifier_port}"
        await wait_until_ready(base_url)
        gate = asyncio.Semaphore(100)
        subscribed = 0
        all_subscribed = asyncio.Event()
        change_published = asyncio.Event()

        async def client(number: int) -> dict[str, Any]:
            nonlocal subscribed
            query = "user=bob&top=2" if number % 2 else "top=2"
            async with gate:
                ws = await connect(ws_url(base_url, "stadium", query))
                snapshot = await receive(ws, timeout_s=30)
            assert snapshot["type"] == "snapshot"
            subscribed += 1
            if subscribed == 1000:
                all_subscribed.set()
            try:
                await change_published.wait()
                return await receive(ws, timeout_s=30)
            finally:
                await ws.close()

        clients = [asyncio.create_task(client(number)) for number in range(1000)]
        await asyncio.wait_for(all_subscribed.wait(), 120)
        await ranker.set_scores(competition, {"bob": 20.0})
        change_published.set()
        updates = await asyncio.gather(*clients)
    assert len(updates) == 1000
    for number, update in enumerate(updates):
        assert update["type"] == "update"
        assert leaders(update) == [("bob", 20.0), ("ann", 10.0)]
        if number % 2:
            assert update["me"] == {"rank": 1, "score": 20.0, "previous_rank": 2}


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_idle_clients_get_the_update_written_directly_each_one_observed(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    """uvicorn runs the notifier's frame-writer protocol: the room writes the update to every
    idle client itself (one encoding), and each write is one change-age observation."""
    protocol_path = str(websocket_limits(settings).uvicorn_options()["ws"])
    assert import_from_string(protocol_path) is FrameWriterProtocol
    competition = await ranker.competition("direct")
    await ranker.set_scores(competition, {"ann": 1.0})
    async with running_app(create_app(settings), settings) as base_url:
        sockets = [await connect(ws_url(base_url, "direct", "top=1")) for _ in range(40)]
        try:
            for ws in sockets:
                assert (await receive(ws))["type"] == "snapshot"
            ages = _sample("podium_notifier_change_age_seconds_count")
            change = await ranker.set_scores(competition, {"bob": 2.0})
            frames = [await asyncio.wait_for(ws.recv(), 5) for ws in sockets]
            assert len(set(frames)) == 1
            assert orjson.loads(frames[0])["version"] == change.version
            assert _sample("podium_notifier_change_age_seconds_count") == ages + 40
        finally:
            for ws in sockets:
                await ws.close()


async def test_closed_connections_are_freed_without_the_cycle_collector(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    """The notifier freezes long-lived objects (survivors of a second), so cyclic garbage
    among them waits minutes for a sweep: a closed connection's protocol must be freed by
    reference counting alone."""
    await ranker.competition("freed")
    async with running_app(create_app(settings), settings) as base_url:
        gc.collect()
        gc.disable()
        try:
            sockets = [await connect(ws_url(base_url, "freed")) for _ in range(20)]
            for ws in sockets:
                assert (await receive(ws))["type"] == "snapshot"
            # weak references now: frozen objects are invisible to gc.get_objects()
            protocols = [
                weakref.ref(thing)
                for thing in gc.get_objects()
                if type(thing) is FrameWriterProtocol
            ]
            assert len(protocols) == 20
            await asyncio.sleep(2.5)  # frozen by now (the freezer runs every second)
            assert gc.get_freeze_count() > 0
            for ws in sockets:
                await ws.close()
            deadline = time.monotonic() + 10
            while any(ref() is not None for ref in protocols) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert all(ref() is None for ref in protocols)
        finally:
            gc.enable()
