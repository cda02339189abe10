"""Two notifier processes (issue #18): each delivers every update to its own clients.

Behind one address a load balancer sends each client to either process, so both must see
every change message: the change feed assigns itself every partition without a consumer
group (shared/change_feed.py). A group would split the partitions between the processes and
each client would miss the updates of the other half. Here two ``podium serve notifier``
processes each hold a client on the same board; after every posted score, both clients must
show it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from tests.support.notifier_clients import connect, leaders, receive, ws_url
from tests.support.ranker_harness import http_service, ranker
from tests.support.servers import running_app, wait_until_ready

SCORES = 12
UPDATE_TIMEOUT_S = 30.0


async def _until_leader(socket: ClientConnection, user_id: str, score: float) -> dict[str, Any]:
    """Read frames until the board's leader is ``user_id`` with ``score``."""
    while True:
        frame = await receive(socket, timeout_s=UPDATE_TIMEOUT_S)
        if frame.get("top") and leaders(frame)[0] == (user_id, score):
            return frame


async def test_two_notifier_processes_each_deliver_every_update(
    settings: PlatformSettings, token_for: Callable[..., str], artifacts_dir: Path
) -> None:
    admin, server = token_for("ops", "admin"), token_for("game", "scores:write:any")
    logs = artifacts_dir / f"notifier-replicas-{settings.db_schema}"
    with (
        ranker(settings, Path(f"{logs}-ranker.log")),
        http_service("notifier", settings, "notifier_port", Path(f"{logs}-a.log")) as first,
        http_service("notifier", settings, "notifier_port", Path(f"{logs}-b.log")) as second,
    ):
        await asyncio.gather(wait_until_ready(first), wait_until_ready(second))
        async with (
            running_app(create_ingest(settings), settings) as ingest,
            httpx.AsyncClient(timeout=10) as client,
        ):
            created = await client.post(
                f"{ingest}/api/v1/competitions",
                json={"id": "replicas", "name": "Replicas", "operator": "best"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert created.status_code == 201, created.text
            async with (
                connect(ws_url(first, "replicas", "top=3")) as on_first,
                connect(ws_url(second, "replicas", "top=3")) as on_second,
            ):
                for socket in (on_first, on_second):
                    assert (await receive(socket))["type"] == "snapshot"
                versions: list[tuple[int, int]] = []
                for index in range(SCORES):
                    value = float(10 + index)  # every score takes the lead
                    response = await client.post(
                        f"{ingest}/api/v1/scores",
                        json={
                            "event_id": f"r{index}",
                            "competition_id": "replicas",
                            "user_id": f"u{index % 3}",
                            "value": value,
                        },
                        headers={"Authorization": f"Bearer {server}"},
                    )
                    assert response.status_code == 202, response.text
                    frames = await asyncio.gather(
                        _until_leader(on_first, f"u{index % 3}", value),
                        _until_leader(on_second, f"u{index % 3}", value),
                    )
                    versions.append((frames[0]["version"], frames[1]["version"]))
    # both processes pushed the same board versions, in order
    assert [a for a, _ in versions] == [b for _, b in versions]
    assert [a for a, _ in versions] == sorted({a for a, _ in versions})
