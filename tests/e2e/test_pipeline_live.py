"""The whole pipeline, live: a score posted to ingest reaches a WebSocket client within 1 s.

Real processes where it matters: the ranker runs as ``podium ranker``; ingest and notifier are
real HTTP servers in this process; the broker, PostgreSQL and Redis are the real ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from services.notifier.app import create_app as create_notifier
from services.query.app import create_app as create_query
from tests.support.notifier_clients import connect, leaders, receive, ws_url
from tests.support.ranker_harness import ranker
from tests.support.servers import running_app

LIVE_BOUND_S = 1.0


def _score(event_id: str, user_id: str, value: float) -> dict[str, object]:
    return {"event_id": event_id, "competition_id": "live", "user_id": user_id, "value": value}


async def _post(
    client: httpx.AsyncClient, ingest: str, token: str, event: dict[str, object]
) -> float:
    """Post one score; the moment the 202 arrived."""
    response = await client.post(
        f"{ingest}/api/v1/scores", json=event, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 202, response.text
    return time.monotonic()


async def test_posted_score_reaches_subscribers_and_readers_within_a_second(
    settings: PlatformSettings, token_for: Callable[..., str], artifacts_dir: Path
) -> None:
    admin, server = token_for("ops", "admin"), token_for("game", "scores:write:any")
    with ranker(settings, artifacts_dir / "pipeline-live-ranker.log"):
        async with (
            running_app(create_ingest(settings), settings) as ingest,
            running_app(create_notifier(settings), settings) as notifier,
            running_app(create_query(settings), settings) as query,
            httpx.AsyncClient(timeout=10) as client,
        ):
            created = await client.post(
                f"{ingest}/api/v1/competitions",
                json={"id": "live", "name": "Live", "operator": "best"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert created.status_code == 201, created.text
            async with connect(ws_url(notifier, "live", "top=3")) as socket:
                snapshot = await receive(socket)
                assert snapshot["type"] == "snapshot"
                assert snapshot["top"] == []
                # the first score also waits for the ranker to join its group
                await _post(client, ingest, server, _score("w1", "bob", 5))
                warm = await receive(socket, timeout_s=60)
                assert leaders(warm) == [("bob", 5.0)]

                accepted_at = await _post(client, ingest, server, _score("e1", "alice", 9))
                update = await receive(socket, timeout_s=5)
                elapsed = time.monotonic() - accepted_at
                assert update["type"] == "update"
                assert update["version"] > warm["version"]
                assert leaders(update) == [("alice", 9.0), ("bob", 5.0)]
                assert elapsed < LIVE_BOUND_S, f"update arrived {elapsed:.3f} s after the 202"

                # the same score is readable from the query API, and a duplicate changes nothing
                top = await client.get(f"{query}/api/v1/leaderboards/live/top")
                assert [(e["user_id"], e["score"]) for e in top.json()["entries"]] == [
                    ("alice", 9.0),
                    ("bob", 5.0),
                ]
                await _post(client, ingest, server, _score("e1", "alice", 9))
                await _post(client, ingest, server, _score("e2", "carol", 7))
                after = await receive(socket, timeout_s=5)
                assert leaders(after) == [("alice", 9.0), ("carol", 7.0), ("bob", 5.0)]
