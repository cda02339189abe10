"""Tournaments through ingest against the real broker, Redis and PostgreSQL: joining (exact
capacity under concurrent joins on two replicas), refusing non-entrants and exhausted
attempts, removing and listing entrants."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from podium.settings import PlatformSettings
from shared.schemas.score_event import ControlAction, ControlEvent
from tests.integration.test_ingest_scores import (
    TokenFor,
    bearer,
    create,
    event,
    ingest_client,
    topic_messages,
)


def join_url(competition_id: str = "c1") -> str:
    return f"/api/v1/competitions/{competition_id}/entrants"


async def join(
    client: httpx.AsyncClient, token_for: TokenFor, user: str, **body: Any
) -> httpx.Response:
    player = bearer(token_for(user, "scores:write"))
    return await client.post(join_url(), json={"user_id": user, **body}, headers=player)


async def test_concurrent_joins_on_two_replicas_never_exceed_capacity(
    settings: PlatformSettings, token_for: TokenFor, pool: asyncpg.Pool
) -> None:
    admin = bearer(token_for("ops", "admin"))
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(ingest_client(settings))
        second = await stack.enter_async_context(ingest_client(settings))
        await create(first, admin, join_required=True, max_entrants=5)
        answers = await asyncio.gather(
            *(join(first if index % 2 else second, token_for, f"p{index}") for index in range(24))
        )
        statuses = sorted(response.status_code for response in answers)
        assert statuses == [201] * 5 + [409] * 19
        refused = [response.json()["error"] for response in answers if response.status_code == 409]
        assert {error["code"] for error in refused} == {"competition_full"}
        assert await pool.fetchval("SELECT count(*) FROM entrants WHERE competition_id = 'c1'") == 5
        # an entrant joining again is no new place, even when full
        joined = next(
            response.json()["user_id"] for response in answers if response.status_code == 201
        )
        again = await join(second, token_for, joined)
        assert again.status_code == 200
        assert again.json()["user_id"] == joined


async def test_a_player_joins_only_as_itself_and_not_after_the_end(
    settings: PlatformSettings, token_for: TokenFor
) -> None:
    admin = bearer(token_for("ops", "admin"))
    async with ingest_client(settings) as client:
        await create(client, admin, join_required=True)
        player = bearer(token_for("u1", "scores:write"))
        other = await client.post(join_url(), json={"user_id": "u2"}, headers=player)
        assert other.status_code == 403
        assert other.json()["error"]["details"]["field"] == "user_id"
        server = bearer(token_for("game-server", "scores:write:any"))
        assert (
            await client.post(join_url(), json={"user_id": "u2"}, headers=server)
        ).status_code == 201
        bad = await client.post(join_url(), json={"user": "u1"}, headers=player)
        assert bad.status_code == 422
        missing = await client.post(join_url("nope"), json={"user_id": "u1"}, headers=player)
        assert missing.status_code == 404
        ended = datetime.now(UTC) - timedelta(seconds=1)
        patched = await client.patch(
            "/api/v1/competitions/c1", json={"ends_at": ended.isoformat()}, headers=admin
        )
        assert patched.status_code == 200, patched.text
        closed = await join(client, token_for, "u3")
        assert closed.status_code == 409
        assert closed.json()["error"]["code"] == "competition_closed"
        assert (
            await client.post(join_url(), json={"user_id": "u2"}, headers=server)
        ).status_code == 200


async def test_scores_of_non_entrants_are_refused_not_joined_single_and_in_batches(
    settings: PlatformSettings, token_for: TokenFor
) -> None:
    admin = bearer(token_for("ops", "admin"))
    server = bearer(token_for("game-server", "scores:write:any"))
    async with ingest_client(settings) as client:
        await create(client, admin, join_required=True)
        refused = await client.post("/api/v1/scores", json=event("e1", "u1"), headers=server)
        assert refused.status_code == 422
        assert refused.json()["error"]["details"]["reason"] == "not_joined"
        assert refused.json()["error"]["details"]["field"] == "user_id"
        assert (await join(client, token_for, "u1")).status_code == 201
        accepted = await client.post("/api/v1/scores", json=event("e1", "u1"), headers=server)
        assert accepted.status_code == 202, accepted.text
        batch = await client.post(
            "/api/v1/scores/batch",
            json={"events": [event("e2", "u2"), event("e3", "u1"), event("e4", "u2")]},
            headers=server,
        )
        assert batch.status_code == 202
        results = batch.json()["results"]
        assert [result["status"] for result in results] == ["rejected", "accepted", "rejected"]
        assert results[0]["reason"] == "not_joined"
        assert results[0]["field"] == "events.0.user_id"
    published = [message.event_id for _, message, _ in await topic_messages(settings)]
    assert published == ["e1", "e3"]


async def test_ingest_refuses_attempts_it_knows_are_used(
    settings: PlatformSettings, token_for: TokenFor, pool: asyncpg.Pool
) -> None:
    admin = bearer(token_for("ops", "admin"))
    server = bearer(token_for("game-server", "scores:write:any"))
    async with ingest_client(settings) as client:
        await create(client, admin, max_attempts=1)
        # what the ranker stores once it applied u1's first attempt (all-time: no reset)
        await pool.execute("INSERT INTO attempts VALUES ('c1', 'alltime', 'u1', 1)")
        refused = await client.post("/api/v1/scores", json=event("e1", "u1"), headers=server)
        assert refused.status_code == 422
        assert refused.json()["error"]["details"]["reason"] == "attempts_exhausted"
        other = await client.post("/api/v1/scores", json=event("e2", "u2"), headers=server)
        assert other.status_code == 202


async def test_removing_an_entrant_frees_the_place_refuses_its_scores_and_erases_in_order(
    settings: PlatformSettings, token_for: TokenFor
) -> None:
    admin = bearer(token_for("ops", "admin"))
    server = bearer(token_for("game-server", "scores:write:any"))
    async with ingest_client(settings) as client:
        await create(client, admin, join_required=True, max_entrants=2)
        for user in ("u1", "u2"):
            assert (await join(client, token_for, user)).status_code == 201
        assert (await join(client, token_for, "u3")).status_code == 409
        assert (
            await client.post("/api/v1/scores", json=event("e1", "u1"), headers=server)
        ).status_code == 202
        removed = await client.delete(join_url() + "/u1", headers=admin)
        assert removed.status_code == 202, removed.text
        assert removed.json()["action"] == "remove_user"
        assert (await client.delete(join_url() + "/u1", headers=admin)).status_code == 404
        assert (await join(client, token_for, "u3")).status_code == 201
        after = await client.post("/api/v1/scores", json=event("e2", "u1"), headers=server)
        assert after.json()["error"]["details"]["reason"] == "not_joined"
        page = await client.get(join_url() + "?limit=1", headers=admin)
        assert page.status_code == 200
        assert page.json()["total"] == 2
        assert [e["user_id"] for e in page.json()["entrants"]] == ["u2"]
        rest = await client.get(join_url() + f"?after={page.json()['next_after']}", headers=admin)
        assert [e["user_id"] for e in rest.json()["entrants"]] == ["u3"]
        assert rest.json()["next_after"] is None
        player = bearer(token_for("u2", "scores:write"))
        assert (await client.get(join_url(), headers=player)).status_code == 403
    messages = [message for _, message, _ in await topic_messages(settings)]
    assert messages[0].event_id == "e1"
    control = messages[1]
    assert isinstance(control, ControlEvent)
    assert (control.action, control.user_id) == (ControlAction.REMOVE_USER, "u1")


async def test_tournament_fields_are_created_patched_and_validated(
    settings: PlatformSettings, token_for: TokenFor
) -> None:
    admin = bearer(token_for("ops", "admin"))
    async with ingest_client(settings) as client:
        await create(client, admin, join_required=True, max_entrants=10, max_attempts=3)
        read = (await client.get("/api/v1/competitions/c1", headers=admin)).json()
        assert (read["join_required"], read["max_entrants"], read["max_attempts"]) == (True, 10, 3)
        patched = await client.patch(
            "/api/v1/competitions/c1",
            json={"join_required": False, "max_entrants": None, "max_attempts": 5},
            headers=admin,
        )
        body = patched.json()
        assert (body["join_required"], body["max_entrants"], body["max_attempts"]) == (
            False,
            None,
            5,
        )
        for wrong in ({"join_required": None}, {"max_entrants": 0}, {"max_attempts": -1}):
            answer = await client.patch("/api/v1/competitions/c1", json=wrong, headers=admin)
            assert answer.status_code == 422, wrong
            assert answer.json()["error"]["details"][0]["field"] == next(iter(wrong))


async def test_a_team_cannot_be_called_top(settings: PlatformSettings, token_for: TokenFor) -> None:
    admin = bearer(token_for("ops", "admin"))
    server = bearer(token_for("game-server", "scores:write:any"))
    async with ingest_client(settings) as client:
        await create(client, admin, teams={"aggregate": "sum"})
        refused = await client.post(
            "/api/v1/scores", json=event("e1", "u1", team_id="top"), headers=server
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["details"][0]["field"] == "team_id"
        accepted = await client.post(
            "/api/v1/scores", json=event("e2", "u1", team_id="topaz"), headers=server
        )
        assert accepted.status_code == 202
