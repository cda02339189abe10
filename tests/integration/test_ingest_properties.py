"""Property tests: whatever JSON arrives at the score endpoints, the answer is never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.settings import PlatformSettings
from services.ingest.app import create_app
from tests.support.servers import running_app

TokenFor = Callable[..., str]
EXPECTED = {202, 400, 403, 413, 422}

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=80)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
any_json = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=20,
)
identifier_like = st.sampled_from(["c1", "u1", "e-1", "", "x" * 65, "bad id", "ü"]) | text
near_event = st.fixed_dictionaries(
    {},
    optional={
        "event_id": identifier_like | any_json,
        "competition_id": st.just("c1") | identifier_like | any_json,
        "user_id": st.just("u1") | identifier_like | any_json,
        "value": st.floats(allow_nan=False, allow_infinity=False) | any_json,
        "ts": st.sampled_from(["2026-11-25T12:00:00Z", "2026-11-25T12:00:00", "yesterday"])
        | any_json,
        "metadata": st.dictionaries(text, scalars, max_size=20) | any_json,
        "extra": any_json,
    },
)
payloads = any_json | near_event


@pytest.fixture
async def ingest(
    settings: PlatformSettings, token_for: TokenFor
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(
            base_url=base_url,
            timeout=20,
            headers={
                "Authorization": f"Bearer {token_for('u1', 'scores:write', 'scores:write:any')}"
            },
        ) as client,
    ):
        admin = {"Authorization": f"Bearer {token_for('ops', 'admin')}"}
        created = await client.post(
            "/api/v1/competitions", json={"id": "c1", "name": "Cup"}, headers=admin
        )
        assert created.status_code == 201
        yield client


async def post(client: httpx.AsyncClient, path: str, payload: Any) -> httpx.Response:
    content = json.dumps(payload).encode()
    return await client.post(path, content=content, headers={"Content-Type": "application/json"})


def _check(response: httpx.Response, payload: Any) -> None:
    assert response.status_code in EXPECTED, (payload, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if response.status_code != 202:
        assert set(body) == {"error"}
        assert body["error"]["code"]


_examples = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_examples
@given(payload=payloads)
async def test_single_endpoint_never_fails_with_500(
    ingest: httpx.AsyncClient, payload: Any
) -> None:
    _check(await post(ingest, "/api/v1/scores", payload), payload)


@_examples
@given(
    payload=st.fixed_dictionaries({"events": st.lists(payloads, max_size=6) | any_json}) | any_json
)
async def test_batch_endpoint_never_fails_with_500(ingest: httpx.AsyncClient, payload: Any) -> None:
    response = await post(ingest, "/api/v1/scores/batch", payload)
    _check(response, payload)
    if response.status_code == 202:
        results = response.json()["results"]
        assert [result["index"] for result in results] == list(range(len(payload["events"])))
