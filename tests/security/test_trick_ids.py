"""SQL-looking and Unicode trick ids in every id field and path parameter of ingest, query and
notifier: a JSON 4xx (ids are ASCII ``[A-Za-z0-9_.:-]{1,64}``), never a 500; PostgreSQL keeps
its tables and nothing with such an id is published or stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.security.conftest import OPEN_COMPETITION, Stack
from tests.security.observe import EXPECTED_TABLES, published, tables
from tests.support.notifier_clients import closed_with, connect, ws_url

TRICK_IDS = {
    "cyrillic a": "r\u0430nking",
    "rtl override": "user\u202egnp.exe",
    "nul": "a\x00b",
    "zero-width joiner": "ad\u200dmin",
    "overlong": "x" * 65,
    "path traversal": "../../etc/passwd",
    "encoded nul": "a%00b",
    "encoded traversal": "..%2f..%2fadmin",
    "sql drop": "'; DROP TABLE competitions; --",
    "sql tautology": "x' OR '1'='1",
    "fullwidth": "\uff41\uff44\uff4d\uff49\uff4e",
    "combining accent": "e\u0301",
    "emoji": "\U0001f3c6",
    "newline": "a\nb",
    "space": "a b",
    "empty": "",
    "lone surrogate escape": "\\ud800",
}


def _path(value: str) -> str:
    return quote(value, safe="")


def _assert_json_4xx(response: httpx.Response, what: str) -> None:
    assert 400 <= response.status_code < 500, (what, response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json"), what
    error = response.json()["error"]
    assert error["code"], what
    assert error["message"], what


def _score(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "trick-ok",
        "competition_id": OPEN_COMPETITION,
        "user_id": "trick-user",
        "value": 1,
        **fields,
    }


@pytest.mark.parametrize("trick", list(TRICK_IDS))
async def test_trick_ids_are_rejected_with_a_json_4xx_everywhere(stack: Stack, trick: str) -> None:
    value = TRICK_IDS[trick]
    server = stack.bearer("trick-server", "scores:write:any")
    admin = stack.bearer("sec-admin", "admin")
    reader = stack.bearer("trick-reader", "leaderboards:read")
    async with httpx.AsyncClient(timeout=20) as client:
        ingest, query = stack.urls["ingest"], stack.urls["query"]
        for field in ("event_id", "competition_id", "user_id"):
            response = await client.post(
                f"{ingest}/api/v1/scores", json=_score(**{field: value}), headers=server
            )
            _assert_json_4xx(response, f"scores {field}")
            batch = await client.post(
                f"{ingest}/api/v1/scores/batch",
                json={"events": [_score(**{field: value})]},
                headers=server,
            )
            if batch.status_code == 202:  # per-event results: this one must be rejected
                results = batch.json()["results"]
                assert [result["status"] for result in results] != ["accepted"], batch.text
            else:
                _assert_json_4xx(batch, f"batch {field}")
        created = await client.post(
            f"{ingest}/api/v1/competitions", json={"id": value, "name": "trick"}, headers=admin
        )
        _assert_json_4xx(created, "competition id")
        listed = await client.get(
            f"{ingest}/api/v1/competitions", params={"after": value}, headers=admin
        )
        _assert_json_4xx(listed, "competitions after")
        encoded = _path(value)
        # an empty path segment is another URL (``/competitions/`` redirects to the list):
        # path parameters are only attacked with non-empty ids
        path_attacks = (
            []
            if not value
            else [
                ("GET", f"/api/v1/competitions/{encoded}"),
                ("PATCH", f"/api/v1/competitions/{encoded}"),
                ("DELETE", f"/api/v1/competitions/{encoded}/users/u1"),
                ("DELETE", f"/api/v1/competitions/{OPEN_COMPETITION}/users/{encoded}"),
                ("POST", f"/api/v1/competitions/{encoded}/users/u1/ban"),
                ("POST", f"/api/v1/competitions/{OPEN_COMPETITION}/users/{encoded}/ban"),
            ]
        )
        for method, path in path_attacks:
            body = {"name": "renamed"} if method == "PATCH" else None
            response = await client.request(method, ingest + path, json=body, headers=admin)
            _assert_json_4xx(response, f"ingest {method} {path}")
        # an empty cursor, window or list item means "the default", and an empty path segment
        # is another URL: only non-empty ids attack these
        reads: list[tuple[str, dict[str, str]]] = []
        if value:
            reads = [
                (f"/api/v1/leaderboards/{OPEN_COMPETITION}/users", {"ids": f"u1,{value}"}),
                ("/api/v1/competitions", {"cursor": value}),
                (f"/api/v1/leaderboards/{OPEN_COMPETITION}/top", {"cursor": value}),
                (f"/api/v1/leaderboards/{OPEN_COMPETITION}/top", {"window": value}),
                (f"/api/v1/leaderboards/{encoded}/top", {}),
                (f"/api/v1/leaderboards/{encoded}/users/u1", {}),
                (f"/api/v1/leaderboards/{OPEN_COMPETITION}/users/{encoded}", {}),
                (f"/api/v1/leaderboards/{encoded}/around/u1", {}),
                (f"/api/v1/leaderboards/{OPEN_COMPETITION}/around/{encoded}", {}),
                (f"/api/v1/leaderboards/{encoded}/users", {"ids": "u1"}),
                (f"/api/v1/competitions/{encoded}", {}),
            ]
        for path, params in reads:
            response = await client.get(query + path, params=params, headers=reader)
            _assert_json_4xx(response, f"query {path} {params}")
        # the notifier's live page and what it reads besides the socket
        notifier = stack.urls["notifier"]
        page_reads = [
            (f"/leaderboards/{OPEN_COMPETITION}/about", {"user": value}),
            (f"/leaderboards/{OPEN_COMPETITION}/about", {"window": value}),
            (f"/leaderboards/{OPEN_COMPETITION}", {"user": value}),
            (f"/leaderboards/{OPEN_COMPETITION}", {"embed": value or "x"}),
        ]
        if value:
            page_reads += [(f"/leaderboards/{encoded}/about", {}), (f"/leaderboards/{encoded}", {})]
        for path, params in page_reads:
            response = await client.get(notifier + path, params=params, headers=reader)
            _assert_json_4xx(response, f"notifier {path} {params}")
    sockets = [
        ws_url(notifier, OPEN_COMPETITION, f"user={_path(value)}"),
        ws_url(notifier, OPEN_COMPETITION, f"window={_path(value)}"),
    ]
    for url in [ws_url(notifier, _path(value)), *sockets] if value else sockets:
        refused_status = None
        try:
            async with connect(url) as ws:
                code, _, frames = await closed_with(ws)
        except InvalidStatus as refused:
            refused_status = refused.response.status_code
        if refused_status is not None:
            # a decoded ``/`` makes another path: no WebSocket route, so the handshake is refused
            assert "/" in value, (url, refused_status)
            assert refused_status in (403, 404), url
            continue
        assert code == 1008, (url, code, frames)
        assert [frame["type"] for frame in frames] == ["error"], url


async def test_nothing_tricky_was_stored_or_published(stack: Stack) -> None:
    """Runs after (or without) the attacks above: the stores hold only well-formed ids."""
    assert await tables(stack.settings) >= EXPECTED_TABLES
    tricky = set(TRICK_IDS.values())
    for event in await published(stack.settings):
        ids = {event.event_id, event.competition_id, getattr(event, "user_id", None)}
        assert not ids & tricky, event
    connection = await asyncpg.connect(stack.settings.database_url.get_secret_value())
    try:
        ids = await connection.fetch(f'SELECT id FROM "{stack.settings.db_schema}".competitions')
    finally:
        await connection.close()
    assert not {row["id"] for row in ids} & tricky
