"""Every HTTP service: health, readiness, metrics, JSON errors, security headers, tokens."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from podium.settings import PlatformSettings
from services.ingest.body import read_json_body
from shared.http.app import create_service_app
from shared.http.auth import require_principal
from shared.http.responses import JSONResponse
from tests.conftest import SettingsFactory
from tests.support.servers import process_environment, running_app

SERVICES = ["ingest", "query", "notifier"]


@pytest.mark.parametrize("service", SERVICES)
async def test_health_ready_metrics_and_errors(settings: PlatformSettings, service: str) -> None:
    create_app = importlib.import_module(f"services.{service}.app").create_app
    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        live = await client.get("/health/live")
        assert live.status_code == 200
        ready = await client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        assert all(value == "ok" for value in ready.json()["checks"].values())
        assert ready.json()["checks"], "a service must check its dependencies"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "# TYPE podium_http_requests_total counter" in metrics.text
        for pool in ("postgres", "redis"):  # every service exports its pool gauges
            assert (
                f'podium_pool_connections_max{{pool="{pool}",service="{service}"}}' in metrics.text
            )
        missing = await client.get("/definitely/not/a/route")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        assert missing.headers["x-frame-options"] == "DENY"
        assert missing.headers["x-content-type-options"] == "nosniff"
        assert "max-age" in missing.headers["strict-transport-security"]
        assert missing.headers["referrer-policy"]
        assert "default-src" in missing.headers["content-security-policy"]
        assert missing.headers["x-request-id"]
        wrong_method = await client.delete("/health/live")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
        assert echoed.headers["x-request-id"] == "abc-123"


async def test_readiness_fails_when_a_dependency_is_down(settings_factory: SettingsFactory) -> None:
    settings = settings_factory()
    app = create_service_app("probe", settings, routes=[])

    async def failing() -> None:
        raise ConnectionError("redis is gone")

    app.state.readiness_checks = {"redis": failing}
    async with (
        running_app(app, settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["redis"].startswith("error")


def _protected_app(settings: PlatformSettings) -> Starlette:
    async def whoami(request: Request) -> Response:
        principal = require_principal(request, settings)
        return JSONResponse({"sub": principal.subject, "scopes": sorted(principal.scopes)})

    return create_service_app("probe", settings, routes=[Route("/whoami", whoami)])


async def test_cli_token_is_accepted_and_bad_tokens_get_401(settings: PlatformSettings) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "podium.cli", "token", "--sub", "alice", "--scope", "scores:write",
         "--scope", "leaderboards:read", "--ttl", "60"],
        env=process_environment(settings),
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    now = int(time.time())
    expired = jwt.encode(
        {"sub": "a", "scope": "admin", "iat": now - 100, "exp": now - 50, "iss": "podium"},
        settings.signing_secret,
        algorithm="HS256",
    )
    retired = jwt.encode(
        {"sub": "a", "scope": "admin", "iat": now, "exp": now + 60, "iss": "podium"},
        "a-retired-secret-that-is-long-enough-000",
        algorithm="HS256",
    )
    unsigned = jwt.encode(
        {"sub": "a", "scope": "admin", "iat": now, "exp": now + 60, "iss": "podium"},
        None,
        algorithm="none",
    )
    app = _protected_app(settings)
    async with (
        running_app(app, settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        accepted = await client.get("/whoami", headers={"Authorization": f"Bearer {printed}"})
        assert accepted.status_code == 200
        assert accepted.json() == {"sub": "alice", "scopes": ["leaderboards:read", "scores:write"]}
        for bad in (expired, retired, unsigned, "garbage"):
            response = await client.get("/whoami", headers={"Authorization": f"Bearer {bad}"})
            assert response.status_code == 401, bad
            assert response.json()["error"]["code"] == "unauthenticated"
            assert response.headers["www-authenticate"].startswith("Bearer")
        anonymous = await client.get("/whoami")
        assert anonymous.status_code == 401


async def test_body_limit_is_enforced_by_the_edge(settings_factory: SettingsFactory) -> None:
    settings = settings_factory(max_body_bytes=2048)

    async def echo(request: Request) -> Response:
        return JSONResponse(await read_json_body(request, max_bytes=settings.max_body_bytes))

    app = create_service_app("probe", settings, routes=[Route("/echo", echo, methods=["POST"])])
    async with (
        running_app(app, settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        ok = await client.post("/echo", json={"a": 1})
        assert ok.json() == {"a": 1}
        too_big = await client.post("/echo", content=b'{"a":"' + b"x" * 4096 + b'"}',
                                    headers={"content-type": "application/json"})  # fmt: skip
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 1024

        chunked = await client.post(
            "/echo", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        not_json = await client.post(
            "/echo", content=b"a=1", headers={"content-type": "text/plain"}
        )
        assert not_json.status_code == 415
        malformed = await client.post(
            "/echo", content=b"{", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        assert malformed.json()["error"]["code"] == "bad_request"
