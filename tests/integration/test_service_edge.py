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
from shared.errors import ConflictError
from shared.http.app import create_service_app
from shared.http.auth import require_principal
from shared.http.responses import JSONResponse
from shared.schemas.score_event import ScoreEventIn
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


async def test_a_direct_route_keeps_the_edge_and_the_error_contract(
    settings_factory: SettingsFactory,
) -> None:
    """``direct_routes`` skip the router's layers (shared.http.direct) and nothing else: the
    same endpoint answers the same through both paths, domain errors get the same JSON, an
    unexpected one a 500, another method the router's 405, and the metrics the template."""
    settings = settings_factory(cors_allow_origins=["https://screen.example"])

    async def probe(request: Request) -> Response:
        body = await read_json_body(request, max_bytes=settings.max_body_bytes)
        if body.get("fail") == "conflict":
            raise ConflictError("taken", details={"field": "name"})
        if body.get("fail") == "schema":
            ScoreEventIn.model_validate({})
        if body.get("fail") == "bug":
            raise RuntimeError("boom")
        # whether the router's exception middleware saw this request
        routed = "starlette.exception_handlers" in request.scope
        return JSONResponse({"routed": routed, "echo": body}, status_code=202)

    direct = Route("/direct", probe, methods=["POST"])
    app = create_service_app(
        "probe",
        settings,
        routes=[direct, Route("/routed", probe, methods=["POST"])],
        direct_routes=[Route("/direct", probe, methods=["POST"])],
    )
    async with (
        running_app(app, settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        answers = {}
        for path in ("/direct", "/routed"):
            ok = await client.post(
                path, json={"a": 1}, headers={"origin": "https://screen.example"}
            )
            assert ok.status_code == 202
            assert ok.json() == {"routed": path == "/routed", "echo": {"a": 1}}
            assert ok.headers["x-content-type-options"] == "nosniff"
            assert len(ok.headers["x-request-id"]) == 32
            assert ok.headers["access-control-allow-origin"] == "https://screen.example"
            for fail in ("conflict", "schema"):
                error = await client.post(path, json={"fail": fail})
                answers[(path, fail)] = (error.status_code, error.json())
                assert error.headers["x-frame-options"] == "DENY"
            bug = await client.post(path, json={"fail": "bug"})
            assert bug.status_code == 500
            assert bug.json()["error"]["code"] == "internal_error"
            not_json = await client.post(path, content=b"a", headers={"content-type": "text/x"})
            assert not_json.status_code == 415
        for fail in ("conflict", "schema"):
            assert answers[("/direct", fail)] == answers[("/routed", fail)]
        assert answers[("/direct", "conflict")][0] == 409
        assert answers[("/direct", "schema")][0] == 422
        wrong_method = await client.get("/direct")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        metrics = (await client.get("/metrics")).text
        assert 'route="/direct",service="probe",status="202"' in metrics
        assert 'route="/direct",service="probe",status="409"' in metrics


def test_a_direct_route_needs_an_exact_path(settings_factory: SettingsFactory) -> None:
    async def probe(request: Request) -> Response:
        return Response()

    with pytest.raises(ValueError, match="exact path"):
        create_service_app(
            "probe",
            settings_factory(),
            routes=[],
            direct_routes=[Route("/things/{thing_id}", probe, methods=["POST"])],
        ).build_middleware_stack()
