"""The live page's framing rules: the embed origins setting, the page's headers, the edge
middleware's X-Frame-Options next to a CSP that names frame-ancestors, and the window tabs."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.notifier.page import page_headers, page_html
from services.notifier.settings import NotifierSettings
from shared.http.middleware import EdgeMiddleware
from shared.schemas.competition import ResetSchedule
from shared.windows import previous_periods


def test_embed_origins_split_on_spaces_and_commas_and_are_normalized(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "PODIUM_EMBED_ALLOWED_ORIGINS",
        " https://Intranet.Example.com,https://*.events.example.com  http://127.0.0.1:8080/ ,",
    )
    settings = NotifierSettings(env="dev")
    assert settings.embed_allowed_origins == [
        "https://intranet.example.com",
        "https://*.events.example.com",
        "http://127.0.0.1:8080",
    ]
    monkeypatch.delenv("PODIUM_EMBED_ALLOWED_ORIGINS")
    assert NotifierSettings(env="dev").embed_allowed_origins == []


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "'self'",
        "'none'",
        "example.com",
        "ftp://example.com",
        "https://example.com/path",
        "https://example.com;script-src *",
        "https://exa mple.com",
        "https://example.com:99999999",
        "https://*",
        "javascript:alert(1)",
        "https://example.com'",
    ],
)
def test_embed_origins_refuse_what_is_not_one_origin(
    monkeypatch: pytest.MonkeyPatch, origin: str
) -> None:
    monkeypatch.setenv("PODIUM_EMBED_ALLOWED_ORIGINS", f"https://ok.example {origin}")
    with pytest.raises(ValidationError, match="embed_allowed_origins"):
        NotifierSettings(env="dev")


def test_page_headers_deny_framing_unless_embedding_with_origins() -> None:
    origins = ["https://a.example", "https://*.b.example"]
    for embed, allowed in ((False, origins), (False, []), (True, [])):
        headers = page_headers("127.0.0.1:8003", embed, allowed)
        assert headers["x-frame-options"] == "DENY"
        assert headers["content-security-policy"].endswith("frame-ancestors 'none'")
    embedded = page_headers("127.0.0.1:8003", True, origins)
    assert "x-frame-options" not in embedded
    assert embedded["content-security-policy"].endswith(
        "frame-ancestors https://a.example https://*.b.example"
    )
    assert "script-src 'self';" in embedded["content-security-policy"]
    assert (
        "connect-src 'self' ws://127.0.0.1:8003 wss://127.0.0.1:8003;"
        in (embedded["content-security-policy"])
    )


def test_page_html_marks_embed_and_theme_on_the_root_element_only() -> None:
    assert '<html lang="en" class="embed theme-dark">' in page_html(True, "dark")
    plain = page_html(False, "auto")
    assert '<html lang="en" class="theme-auto">' in plain
    # the CSP forbids inline script and style
    assert "<script>" not in plain
    assert "style=" not in plain


async def _headers_behind_edge(response_headers: dict[str, str]) -> httpx.Headers:
    async def endpoint(request: Request) -> Response:
        return Response("ok", headers=response_headers)

    app = EdgeMiddleware(
        Starlette(routes=[Route("/", endpoint)]), service="test", max_body_bytes=1024
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return (await client.get("/")).headers


async def test_edge_adds_no_default_frame_options_next_to_a_csp_naming_frame_ancestors() -> None:
    plain = await _headers_behind_edge({})
    assert plain["x-frame-options"] == "DENY"
    assert plain["content-security-policy"] == "default-src 'self'"
    own_csp = await _headers_behind_edge({"content-security-policy": "default-src 'none'"})
    assert own_csp["x-frame-options"] == "DENY"
    framed = await _headers_behind_edge(
        {"content-security-policy": "default-src 'none'; frame-ancestors https://a.example"}
    )
    assert "x-frame-options" not in framed
    assert framed["x-content-type-options"] == "nosniff"
    denied = await _headers_behind_edge(
        {"content-security-policy": "frame-ancestors 'none'", "x-frame-options": "DENY"}
    )
    assert denied.get_list("x-frame-options") == ["DENY"]


@pytest.mark.parametrize(
    ("reset", "moment", "timezone", "expected"),
    [
        (ResetSchedule.NONE, datetime(2026, 3, 1, tzinfo=UTC), "UTC", []),
        (
            ResetSchedule.DAILY,
            datetime(2026, 3, 1, 0, 30, tzinfo=UTC),
            "UTC",
            ["2026-02-28", "2026-02-27", "2026-02-26"],
        ),
        (
            ResetSchedule.DAILY,  # 00:30 UTC is still the 28th in New York
            datetime(2026, 3, 1, 0, 30, tzinfo=UTC),
            "America/New_York",
            ["2026-02-27", "2026-02-26", "2026-02-25"],
        ),
        (
            ResetSchedule.DAILY,  # across the spring-forward night in Berlin
            datetime(2026, 3, 30, 12, tzinfo=UTC),
            "Europe/Berlin",
            ["2026-03-29", "2026-03-28", "2026-03-27"],
        ),
        (
            ResetSchedule.WEEKLY,  # ISO weeks across a year end (2026-W01 starts 2025-12-29)
            datetime(2026, 1, 2, tzinfo=UTC),
            "UTC",
            ["2025-W52", "2025-W51", "2025-W50"],
        ),
        (
            ResetSchedule.MONTHLY,
            datetime(2026, 3, 31, 23, tzinfo=UTC),
            "UTC",
            ["2026-02", "2026-01", "2025-12"],
        ),
    ],
)
def test_previous_periods_are_the_periods_before_the_current_one(
    reset: ResetSchedule, moment: datetime, timezone: str, expected: list[str]
) -> None:
    assert previous_periods(reset, moment, timezone, 3) == expected
