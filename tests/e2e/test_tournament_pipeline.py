"""A tournament end to end: players join, post, read their attempts; the limit and the
membership hold through ingest and the ranker (a real ``podium ranker`` process), and an
admin's removal frees the place and erases the standing in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from services.query.app import create_app as create_query
from services.query.schemas import UserStanding
from tests.support.ranker_harness import ranker
from tests.support.servers import running_app


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _until(probe: Callable[[], Any], timeout_s: float) -> Any:
    """Poll ``probe`` (async, returns a value or None) until it returns a value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await probe()
        if value is not None:
            return value
        await asyncio.sleep(0.1)
    raise TimeoutError("condition not reached")


async def test_join_post_read_attempts_and_remove(
    settings: PlatformSettings, token_for: Callable[..., str], artifacts_dir: Path
) -> None:
    admin = _bearer(token_for("ops", "admin"))
    players = {name: _bearer(token_for(name, "scores:write")) for name in ("ann", "ben", "cat")}
    with ranker(settings, artifacts_dir / "tournament-ranker.log"):
        async with (
            running_app(create_ingest(settings), settings) as ingest,
            running_app(create_query(settings), settings) as query,
            httpx.AsyncClient(timeout=10) as client,
        ):
            created = await client.post(
                f"{ingest}/api/v1/competitions",
                json={"id": "cup", "name": "Cup", "join_required": True, "max_entrants": 2,
                      "max_attempts": 2},
                headers=admin,
            )  # fmt: skip
            assert created.status_code == 201, created.text

            async def post(user: str, event_id: str, value: float) -> httpx.Response:
                event = {"event_id": event_id, "competition_id": "cup", "user_id": user,
                         "value": value}  # fmt: skip
                return await client.post(
                    f"{ingest}/api/v1/scores", json=event, headers=players[user]
                )

            async def join(user: str) -> int:
                response = await client.post(
                    f"{ingest}/api/v1/competitions/cup/entrants",
                    json={"user_id": user},
                    headers=players[user],
                )
                return response.status_code

            async def standing(user: str) -> UserStanding | None:
                response = await client.get(f"{query}/api/v1/leaderboards/cup/users/{user}")
                return (
                    UserStanding.model_validate(response.json())
                    if response.status_code == 200
                    else None
                )

            refused = await post("ann", "a0", 1)
            assert refused.json()["error"]["details"]["reason"] == "not_joined"
            assert [await join("ann"), await join("ben"), await join("cat")] == [201, 201, 409]

            assert (await post("ann", "a1", 10)).status_code == 202

            def used(count: int) -> Callable[[], Any]:
                async def probe() -> UserStanding | None:
                    # the standing (Redis) can show a few ms before the batch's commit makes
                    # its attempts readable (PostgreSQL): docs/tournaments.md
                    read = await standing("ann")
                    return read if read and read.attempts and read.attempts.used == count else None

                return probe

            first = await _until(used(1), 60)  # the ranker joins its group first
            assert (first.score, first.attempts.max, first.attempts.window) == (10, 2, "alltime")

            assert (await post("ann", "a2", 30)).status_code == 202
            second = await _until(used(2), 10)
            assert second.score == 30
            third = await post("ann", "a3", 99)
            assert third.status_code == 422
            assert third.json()["error"]["details"]["reason"] == "attempts_exhausted"

            removed = await client.delete(
                f"{ingest}/api/v1/competitions/cup/entrants/ann", headers=admin
            )
            assert removed.status_code == 202, removed.text
            assert (await post("ann", "a4", 50)).json()["error"]["details"][
                "reason"
            ] == "not_joined"
            assert await join("cat") == 201  # the place is free at once

            async def gone() -> bool | None:
                return True if await standing("ann") is None else None

            await _until(gone, 10)
            assert await join("ann") == 409  # full again: ben and cat
