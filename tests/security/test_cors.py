"""CORS only for the allowlist (``PODIUM_CORS_ALLOW_ORIGINS``), on every HTTP service."""

from __future__ import annotations

import httpx
import pytest

from podium.settings import PlatformSettings
from services.ingest.app import create_app
from tests.security.conftest import ALLOWED_ORIGIN, OPEN_COMPETITION, Stack
from tests.support.servers import running_app

PATHS = {
    "ingest": "/api/v1/scores",
    "query": f"/api/v1/leaderboards/{OPEN_COMPETITION}/top",
    "notifier": "/health/live",
}
LOOKALIKES = [
    "https://evil.example",
    "https://allowed.example.evil.example",
    "https://evil-allowed.example",
    "http://allowed.example",
    "https://allowed.example:8443",
    "null",
]


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-")}


@pytest.mark.parametrize("service", list(PATHS))
async def test_allowed_origin_gets_cors_headers_and_others_none(stack: Stack, service: str) -> None:
    url = stack.urls[service] + PATHS[service]
    async with httpx.AsyncClient(timeout=20) as client:
        preflight = await client.options(url, headers=_preflight(ALLOWED_ORIGIN))
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        simple = await client.get(url, headers={"Origin": ALLOWED_ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
        for origin in LOOKALIKES:
            refused = await client.options(url, headers=_preflight(origin))
            assert refused.status_code >= 400, origin
            assert "access-control-allow-origin" not in refused.headers, origin
            plain = await client.get(url, headers={"Origin": origin})
            assert "access-control-allow-origin" not in plain.headers, origin
            assert "access-control-allow-credentials" not in plain.headers, origin


async def test_no_allowlist_means_no_cors_at_all(settings: PlatformSettings) -> None:
    assert settings.cors_allow_origins == []
    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=20) as client,
    ):
        for origin in (ALLOWED_ORIGIN, "https://evil.example", "null"):
            preflight = await client.options("/api/v1/scores", headers=_preflight(origin))
            assert preflight.status_code == 405, preflight.text  # no CORS layer: no OPTIONS
            assert _cors_headers(preflight) == {}
            simple = await client.get("/health/live", headers={"Origin": origin})
            assert simple.status_code == 200
            assert _cors_headers(simple) == {}
