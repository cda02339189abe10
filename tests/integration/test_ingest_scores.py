"""Ingest against the real broker, Redis and PostgreSQL: intake, admission, authz, admin."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from podium.settings import PlatformSettings
from services.ingest.app import create_app
from shared.kafka_headers import PRODUCER, REQUEST_ID, header_value
from shared.schemas.score_event import ControlEvent, ScoreEvent, parse_topic_message
from tests.conftest import SettingsFactory
from tests.support.servers import running_app
from tests.support.topic_reader import read_topic

TokenFor = Callable[..., str]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def ingest_client(settings: PlatformSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        yield client


@pytest.fixture
async def client(settings: PlatformSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with ingest_client(settings) as client:
        yield client


@pytest.fixture
def admin(token_for: TokenFor) -> dict[str, str]:
    return bearer(token_for("ops", "admin"))


@pytest.fixture
def server(token_for: TokenFor) -> dict[str, str]:
    return bearer(token_for("game-server", "scores:write:any"))


async def create(client: httpx.AsyncClient, admin: dict[str, str], **fields: Any) -> None:
    body = {"id": "c1", "name": "Cup", **fields}
    response = await client.post("/api/v1/competitions", json=body, headers=admin)
    assert response.status_code == 201, response.text


def event(event_id: str, user_id: str = "u1", **fields: Any) -> dict[str, Any]:
    return {"event_id": event_id, "competition_id": "c1", "user_id": user_id, "value": 10, **fields}


async def topic_messages(
    settings: PlatformSettings,
) -> list[tuple[str, ScoreEvent | ControlEvent, Any]]:
    records = await read_topic(settings, settings.topic_score_events)
    return [
        (record.key.decode(), parse_topic_message(record.value), record)
        for record in records
        if record.key is not None and record.value is not None
    ]


async def test_posted_event_is_on_the_topic_with_key_value_and_headers(
    settings: PlatformSettings,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    token_for: TokenFor,
) -> None:
    await create(client, admin)
    player = bearer(token_for("u1", "scores:write"))
    response = await client.post(
        "/api/v1/scores",
        json=event("e1", value=12.5, metadata={"level": 3}),
        headers={**player, "X-Request-ID": "req-e1"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["event_id"] == "e1"
    assert response.headers["ratelimit-limit"] == str(settings.rate_player_burst)
    explicit = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)  # within the horizon
    explicit_ts = explicit.isoformat()
    response = await client.post("/api/v1/scores", json=event("e2", ts=explicit_ts), headers=player)
    assert response.status_code == 202

    messages = await topic_messages(settings)
    assert [message.event_id for _, message, _ in messages] == ["e1", "e2"]
    key, first, record = messages[0]
    assert key == "c1"
    assert isinstance(first, ScoreEvent)
    assert (first.competition_id, first.user_id, first.value) == ("c1", "u1", 12.5)
    assert first.metadata == {"level": 3}
    assert first.ts == first.received_at  # no ts posted: the receive time
    assert header_value(record.headers, REQUEST_ID) == "req-e1"
    assert header_value(record.headers, PRODUCER) == "u1"
    second = messages[1][1]
    assert isinstance(second, ScoreEvent)
    assert second.ts == explicit
    assert messages[0][2].partition == messages[1][2].partition  # same key, same partition


async def test_batch_gets_exact_per_item_results_and_only_good_events_reach_the_topic(
    settings: PlatformSettings,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    token_for: TokenFor,
) -> None:
    await create(client, admin, max_value=100)
    batch = [
        event("good-1", "u1", value=1),
        event("bad-value", "u1", value="ten"),
        {**event("unknown", "u1"), "competition_id": "nope"},
        event("too-big", "u1", value=101),
        event("other-user", "u2"),
        ["not", "an", "object"],
        event("good-2", "u1", value=2),
    ]
    player = bearer(token_for("u1", "scores:write"))
    response = await client.post("/api/v1/scores/batch", json={"events": batch}, headers=player)
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 5)
    outcome = [
        (r["index"], r.get("event_id"), r["status"], r.get("reason"), r.get("field"))
        for r in body["results"]
    ]
    assert outcome == [
        (0, "good-1", "accepted", None, None),
        (1, "bad-value", "rejected", "validation_failed", "events.1.value"),
        (2, "unknown", "rejected", "unknown_competition", "events.2.competition_id"),
        (3, "too-big", "rejected", "above_max_value", "events.3.value"),
        (4, "other-user", "rejected", "forbidden", "events.4.user_id"),
        (5, None, "rejected", "validation_failed", "events.5"),
        (6, "good-2", "accepted", None, None),
    ]
    messages = await topic_messages(settings)
    assert sorted(message.event_id for _, message, _ in messages) == ["good-1", "good-2"]
    metrics = (await client.get("/metrics")).text
    for line in (
        'podium_ingest_events_rejected_total{reason="above_max_value"}',
        'podium_ingest_events_rejected_total{reason="forbidden"}',
        "podium_ingest_events_accepted_total",
        'podium_ingest_produce_duration_seconds_count{outcome="ok"}',
        'podium_http_requests_total{method="POST",route="/api/v1/scores/batch"',
    ):
        assert line in metrics, line


async def test_bad_inputs_get_their_status_and_json_error_and_nothing_is_published(
    settings_factory: SettingsFactory, settings: PlatformSettings, token_for: TokenFor
) -> None:
    small = settings_factory(max_body_bytes=4096, ingest_batch_max_events=3)
    now = datetime.now(UTC)
    async with ingest_client(small) as client:
        admin = bearer(token_for("ops", "admin"))
        await create(client, admin, max_value=50, ends_at=(now + timedelta(days=1)).isoformat())
        for competition in (
            {"id": "later", "starts_at": (now + timedelta(days=1)).isoformat()},
            {"id": "over", "ends_at": (now - timedelta(seconds=1)).isoformat()},
        ):
            await create(client, admin, **{"starts_at": None, **competition})
        writer = {**bearer(token_for("game", "scores:write:any")), "X-Request-ID": "bad-input"}
        json_type = {**writer, "Content-Type": "application/json"}
        big = {"events": [event(f"e{i}", metadata={"k": "x" * 2000}) for i in range(3)]}
        one, many = "/api/v1/scores", "/api/v1/scores/batch"

        def body(payload: Any) -> dict[str, Any]:
            return {"json": payload, "headers": writer}

        def raw(content: bytes, headers: dict[str, str]) -> dict[str, Any]:
            return {"content": content, "headers": headers}

        later = {**event("e"), "competition_id": "later"}
        over = {**event("e"), "competition_id": "over"}
        after_end = (now + timedelta(days=2)).isoformat()
        beyond_horizon = (now - timedelta(days=30, minutes=5)).isoformat()
        unknown = {**event("e"), "competition_id": "zz"}
        seventeen = {str(i): i for i in range(17)}
        four = [event(f"e{i}") for i in range(4)]
        cases: list[tuple[str, str, dict[str, Any], int, str, str | None]] = [
            (one, "text", raw(b"{}", writer), 415, "", None),
            (one, "json", raw(b"{nope", json_type), 400, "", None),
            (one, "inf", raw(b'{"value": 1e400}', json_type), 400, "", None),
            (one, "size", body({"x": "y" * 5000}), 413, "", None),
            (many, "size", body(big), 413, "", None),
            (one, "missing", body({"user_id": "u"}), 422, "", "event_id"),
            (one, "pattern", body(event("bad id!")), 422, "", "event_id"),
            (one, "too long", body(event("e" * 65)), 422, "", "event_id"),
            (one, "bool", body(event("e", value=True)), 422, "", "value"),
            (one, "nan", body(event("e", value="NaN")), 422, "", "value"),
            (one, "naive ts", body(event("e", ts="2026-01-01T00:00:00")), 422, "", "ts"),
            (one, "extra", body(event("e", colour="red")), 422, "", "colour"),
            (one, "17 keys", body(event("e", metadata=seventeen)), 422, "", "metadata"),
            (one, "1 KiB", body(event("e", metadata={"k": "x" * 1100})), 422, "", "metadata"),
            (one, "nested", body(event("e", metadata={"k": {"a": 1}})), 422, "", "metadata.k"),
            (one, "list body", body([event("e")]), 422, "", "body"),
            (one, "unknown", body(unknown), 422, "unknown_competition", "competition_id"),
            (one, "not started", body(later), 422, "not_started", "competition_id"),
            (one, "ended", body(over), 422, "ended", "competition_id"),
            (one, "max", body(event("e", value=50.5)), 422, "above_max_value", "value"),
            (one, "late ts", body(event("e", ts=after_end)), 422, "ts_outside_competition", "ts"),
            (one, "old ts", body(event("e", ts=beyond_horizon)), 422, "beyond_dedup_horizon", "ts"),
            (many, "empty", body({"events": []}), 422, "", "events"),
            (many, "too many", body({"events": four}), 422, "", "events"),
            (many, "no list", body({"events": {"a": 1}}), 422, "", "events"),
            (many, "extra", body({"events": [event("e")], "x": 1}), 422, "", "x"),
            (many, "array", body([event("e")]), 422, "", "body"),
        ]  # fmt: skip
        for path, label, request, status, reason, field in cases:
            response = await client.post(path, **request)
            assert response.status_code == status, (label, response.text)
            assert response.headers["content-type"] == "application/json", label
            assert response.headers["x-content-type-options"] == "nosniff", label
            error = response.json()["error"]
            assert error["code"], label
            assert error["message"], label
            if reason:
                assert error["code"] == "event_rejected"
                assert error["details"] == {"reason": reason, "field": field}, label
            elif field is not None:
                fields = [item["field"] for item in error["details"]]
                assert any(f == field or f.startswith(f"{field}.") for f in fields), (label, error)

        for method, path, status in [
            ("GET", "/api/v1/nothing", 404),
            ("GET", "/api/v1/scores", 405),
            ("PUT", "/api/v1/scores/batch", 405),
        ]:
            response = await client.request(method, path, headers=writer)
            assert response.status_code == status
            assert response.json()["error"]["code"] in ("not_found", "method_not_allowed")
            assert response.headers["x-frame-options"] == "DENY"
    assert await topic_messages(small) == []


async def test_authentication_and_scopes(
    settings: PlatformSettings,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    token_for: TokenFor,
) -> None:
    await create(client, admin)
    now = datetime.now(UTC)
    claims = {
        "sub": "u1",
        "scope": "scores:write",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
        "iss": settings.jwt_issuer,
    }
    forged = jwt.encode(claims, "another-secret-0123456789-0123456789-xyz", algorithm="HS256")
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    for headers in (
        {},
        bearer(token_for("u1", "scores:write", ttl_s=-60)),
        bearer(forged),
        bearer(unsigned),
        {"Authorization": "Basic dTE6cGFzcw=="},
    ):
        response = await client.post("/api/v1/scores", json=event("e1"), headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["www-authenticate"].startswith("Bearer")

    player = bearer(token_for("u1", "scores:write"))
    response = await client.post("/api/v1/scores", json=event("e1", "u2"), headers=player)
    assert response.status_code == 403
    assert response.json()["error"]["details"]["field"] == "user_id"
    reader = bearer(token_for("u1", "leaderboards:read"))
    assert (
        await client.post("/api/v1/scores", json=event("e1"), headers=reader)
    ).status_code == 403
    server = bearer(token_for("game", "scores:write:any"))
    assert (
        await client.post("/api/v1/scores", json=event("e2", "u2"), headers=server)
    ).status_code == 202

    for method, path, body in [
        ("POST", "/api/v1/competitions", {"id": "c2", "name": "x"}),
        ("PATCH", "/api/v1/competitions/c1", {"name": "y"}),
        ("GET", "/api/v1/competitions", None),
        ("GET", "/api/v1/competitions/c1", None),
        ("DELETE", "/api/v1/competitions/c1/users/u1", None),
        ("POST", "/api/v1/competitions/c1/users/u1/ban", None),
    ]:
        for headers, status in ((server, 403), (player, 403), ({}, 401)):
            response = await client.request(method, path, json=body, headers=headers)
            assert response.status_code == status, (method, path, response.text)
    messages = await topic_messages(settings)
    assert [message.event_id for _, message, _ in messages] == ["e2"]


async def test_competition_management_and_admission_follow_changes_at_once(
    client: httpx.AsyncClient, admin: dict[str, str], server: dict[str, str]
) -> None:
    await create(client, admin, operator="sum", sort_order="asc", timezone="Europe/Paris")
    duplicate = await client.post(
        "/api/v1/competitions", json={"id": "c1", "name": "x"}, headers=admin
    )
    assert duplicate.status_code == 409
    for index in range(2, 5):
        await create(client, admin, id=f"c{index}", visibility="private")
    detail = (await client.get("/api/v1/competitions/c1", headers=admin)).json()
    assert (detail["operator"], detail["sort_order"], detail["timezone"]) == (
        "sum",
        "asc",
        "Europe/Paris",
    )

    first = (await client.get("/api/v1/competitions?limit=3", headers=admin)).json()
    assert [c["id"] for c in first["competitions"]] == ["c1", "c2", "c3"]
    rest = await client.get(
        f"/api/v1/competitions?limit=3&after={first['next_after']}", headers=admin
    )
    assert [c["id"] for c in rest.json()["competitions"]] == ["c4"]
    assert rest.json()["next_after"] is None
    bad_limit = await client.get("/api/v1/competitions?limit=0", headers=admin)
    assert bad_limit.status_code == 400
    assert bad_limit.json()["error"]["details"]["field"] == "query.limit"

    assert (
        await client.post("/api/v1/scores", json=event("a", value=500), headers=server)
    ).status_code == 202
    patched = await client.patch("/api/v1/competitions/c1", json={"max_value": 100}, headers=admin)
    assert patched.status_code == 200
    assert patched.json()["max_value"] == 100
    refused = await client.post("/api/v1/scores", json=event("b", value=500), headers=server)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["reason"] == "above_max_value"
    ended = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert (
        await client.patch("/api/v1/competitions/c1", json={"ends_at": ended}, headers=admin)
    ).status_code == 200
    closed = await client.post("/api/v1/scores", json=event("c", value=1), headers=server)
    assert closed.json()["error"]["details"]["reason"] == "ended"

    for path, body, status, field in [
        ("/api/v1/competitions/c1", {"name": None}, 422, "name"),
        ("/api/v1/competitions/c1", {"sort_order": "asc"}, 422, "sort_order"),
        ("/api/v1/competitions/c1", {"max_value": "big"}, 422, "max_value"),
        ("/api/v1/competitions/nope", {"name": "x"}, 404, None),
        ("/api/v1/competitions/bad%20id", {"name": "x"}, 422, "path.competition_id"),
    ]:
        response = await client.patch(path, json=body, headers=admin)
        assert response.status_code == status, (body, response.text)
        if field:
            assert field in {item["field"] for item in response.json()["error"]["details"]}
    starts = datetime.now(UTC) + timedelta(days=1)
    await create(client, admin, id="c9", starts_at=starts.isoformat())
    before_start = (starts - timedelta(hours=1)).isoformat()
    backwards = await client.patch(
        "/api/v1/competitions/c9", json={"ends_at": before_start}, headers=admin
    )
    assert backwards.status_code == 422
    for body, field in [
        ({"id": "c5"}, "name"),
        ({"id": "c5", "name": "x", "operator": "max"}, "operator"),
        ({"id": "c5", "name": "x", "timezone": "Mars/Base"}, "timezone"),
        (
            {
                "id": "c5",
                "name": "x",
                "starts_at": "2026-01-02T00:00:00Z",
                "ends_at": "2026-01-01T00:00:00Z",
            },
            "body",
        ),
        ({"id": "c5", "name": "nul\u0000"}, "body"),
    ]:
        response = await client.post("/api/v1/competitions", json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)
        assert field in {item["field"] for item in response.json()["error"]["details"]}
    assert (await client.get("/api/v1/competitions/c5", headers=admin)).status_code == 404


async def test_remove_and_ban_travel_in_order_with_the_scores(
    settings: PlatformSettings,
    client: httpx.AsyncClient,
    admin: dict[str, str],
    server: dict[str, str],
) -> None:
    await create(client, admin)
    assert (
        await client.post("/api/v1/scores", json=event("s1", "cheater"), headers=server)
    ).status_code == 202
    removed = await client.delete("/api/v1/competitions/c1/users/cheater", headers=admin)
    assert removed.status_code == 202, removed.text
    banned = await client.post("/api/v1/competitions/c1/users/cheater/ban", headers=admin)
    assert banned.status_code == 202
    assert banned.json()["action"] == "ban_user"
    unknown = await client.post("/api/v1/competitions/zz/users/cheater/ban", headers=admin)
    assert unknown.status_code == 404
    bad_user = await client.delete("/api/v1/competitions/c1/users/b%C3%A4d", headers=admin)
    assert bad_user.status_code == 422

    messages = await topic_messages(settings)
    assert [key for key, _, _ in messages] == ["c1", "c1", "c1"]
    assert len({record.partition for _, _, record in messages}) == 1
    kinds = [(m.kind, getattr(m, "action", None)) for _, m, _ in messages]
    assert kinds == [("score", None), ("control", "remove_user"), ("control", "ban_user")]
    control = messages[2][1]
    assert isinstance(control, ControlEvent)
    assert (control.user_id, control.requested_by) == ("cheater", "ops")
    assert control.event_id == banned.json()["event_id"]
