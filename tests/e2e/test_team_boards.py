"""Team boards end to end: scores with team ids through ingest and a real ``podium ranker``
process, read from the query API (pages, a team, its members), a user moving teams and an
admin's removal, and the board rebuilt when Redis loses it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from services.notifier.app import create_app as create_notifier
from services.query.app import create_app as create_query
from services.query.schemas import TeamMembers, TeamStanding, TeamTopPage
from shared.redis_client import create_redis
from tests.support.notifier_clients import closed_with, connect, leaders, receive, ws_url
from tests.support.ranker_harness import ranker
from tests.support.servers import running_app


async def _until(probe: Callable[[], Awaitable[Any]], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = await probe()
        if last is not None:
            return last
        await asyncio.sleep(0.1)
    raise TimeoutError(f"condition not reached, last {last!r}")


async def test_team_board_adds_up_members_follows_moves_and_removals(
    settings: PlatformSettings, token_for: Callable[..., str], artifacts_dir: Path
) -> None:
    admin = {"Authorization": f"Bearer {token_for('ops', 'admin')}"}
    server = {"Authorization": f"Bearer {token_for('game', 'scores:write:any')}"}
    with ranker(settings, artifacts_dir / "team-boards-ranker.log"):
        async with (
            contextlib.AsyncExitStack() as stack,
            running_app(create_ingest(settings), settings) as ingest,
            running_app(create_query(settings), settings) as query,
            running_app(create_notifier(settings), settings) as notifier,
            httpx.AsyncClient(timeout=10) as client,
        ):
            created = await client.post(
                f"{ingest}/api/v1/competitions",
                json={"id": "league", "name": "League", "operator": "sum",
                      "teams": {"aggregate": "sum"}},
                headers=admin,
            )  # fmt: skip
            assert created.status_code == 201, created.text
            assert created.json()["teams"] == {"aggregate": "sum"}

            async def post(event_id: str, user: str, value: float, team: str | None) -> None:
                event: dict[str, Any] = {"event_id": event_id, "competition_id": "league",
                                         "user_id": user, "value": value}  # fmt: skip
                if team is not None:
                    event["team_id"] = team
                response = await client.post(f"{ingest}/api/v1/scores", json=event, headers=server)
                assert response.status_code == 202, response.text

            async def board() -> list[tuple[str, float]]:
                response = await client.get(f"{query}/api/v1/leaderboards/league/teams/top")
                assert response.status_code == 200, response.text
                page = TeamTopPage.model_validate(response.json())
                return [(entry.team_id, entry.score) for entry in page.entries]

            def board_is(expected: list[tuple[str, float]]) -> Callable[[], Awaitable[Any]]:
                async def probe() -> Any:
                    got = await board()
                    return got if got == expected else None

                return probe

            await post("e1", "ann", 10, "red")
            await post("e2", "ben", 5, "red")
            await post("e3", "cat", 12, "blue")
            await post("e4", "ann", 1, None)  # no team_id: ann stays in red
            await _until(board_is([("red", 16.0), ("blue", 12.0)]), 60)
            socket = await stack.enter_async_context(
                connect(ws_url(notifier, "league", "board=teams&user=blue"))
            )
            snapshot = await receive(socket)
            assert snapshot["type"] == "snapshot"
            assert leaders(snapshot) == [("red", 16.0), ("blue", 12.0)]  # user_id: the team
            assert snapshot["me"]["rank"] == 2

            team = await client.get(f"{query}/api/v1/leaderboards/league/teams/red")
            standing = TeamStanding.model_validate(team.json())
            assert (standing.rank, standing.score, standing.members, standing.total) == (
                1,
                16,
                2,
                2,
            )
            members = await client.get(f"{query}/api/v1/leaderboards/league/teams/red/members")
            listed = TeamMembers.model_validate(members.json())
            assert [(m.rank, m.user_id, m.score) for m in listed.entries] == [
                (1, "ann", 11.0),
                (2, "ben", 5.0),
            ]

            await post("e5", "ann", 2, "blue")  # ann moves with her whole standing
            await _until(board_is([("blue", 25.0), ("red", 5.0)]), 10)
            update = await receive(socket, timeout_s=10)
            while leaders(update) != [("blue", 25.0), ("red", 5.0)]:  # one or two frames
                update = await receive(socket, timeout_s=10)
            assert update["me"]["rank"] == 1

            removed = await client.delete(
                f"{ingest}/api/v1/competitions/league/users/cat", headers=admin
            )
            assert removed.status_code == 202
            await _until(board_is([("blue", 13.0), ("red", 5.0)]), 10)

            # Redis loses the team board: the next read rebuilds it from PostgreSQL
            redis: Redis = create_redis(settings)
            try:
                keys = [key async for key in redis.scan_iter(match="*league~teams*")]
                assert keys
                await redis.delete(*keys)
            finally:
                await redis.aclose()
            assert await board() == [("blue", 13.0), ("red", 5.0)]

            none = await client.get(f"{query}/api/v1/leaderboards/league/teams/green")
            assert none.status_code == 404
            no_board = await client.post(
                f"{ingest}/api/v1/competitions",
                json={"id": "solo", "name": "Solo"},
                headers=admin,
            )
            assert no_board.status_code == 201
            missing = await client.get(f"{query}/api/v1/leaderboards/solo/teams/top")
            assert missing.status_code == 404
            assert "team board" in missing.json()["error"]["message"]
            async with connect(ws_url(notifier, "solo", "board=teams")) as refused:
                error = await receive(refused)
                assert error["type"] == "error"
                assert error["error"]["details"]["field"] == "query.board"
                code, _, _ = await closed_with(refused)
                assert code == 1008
