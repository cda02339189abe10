"""The live page in a real browser: Debian's chromium driven by Playwright (no browser download).

Scores are written by the ranker stand-in (Redis standings + the change message, as the ranker
does), so each test drives the page from the notifier's real change feed. Screenshots go to
``test-artifacts/live-page/``.
"""

from __future__ import annotations

import contextlib
import html
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route as StarletteRoute

from devstack.processes import free_port
from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from services.notifier.app import create_app
from shared.schemas.competition import (
    Competition,
    ResetSchedule,
    TeamAggregate,
    TeamsSetting,
    Visibility,
)
from shared.teams import team_board
from shared.windows import CURRENT, previous_periods, resolve_window
from tests.support.notifier_driver import RankerStandIn, ranker_stand_in
from tests.support.ranker_harness import ranker as ranker_process
from tests.support.servers import running_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
VIEWPORTS = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture
async def ranker(settings: PlatformSettings) -> AsyncIterator[RankerStandIn]:
    async with ranker_stand_in(settings) as stand_in:
        yield stand_in


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing; install Debian's chromium: "
            "'apt-get update && apt-get install -y chromium'"
        )
    return CHROMIUM


@pytest.fixture
def shots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "live-page"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def watch_console(page: Page) -> list[str]:
    """Errors and warnings the page logs (a CSP violation is one)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    page.on("console", on_console)
    return problems


async def test_page_shows_the_new_leader_without_reload(
    settings: PlatformSettings, ranker: RankerStandIn, browser: Browser, shots: Path
) -> None:
    competition = await ranker.competition("arena")
    await ranker.set_scores(competition, {"ann": 120.0, "bob": 80.0, "cat": 45.5})
    async with running_app(create_app(settings), settings) as base_url:
        page = await browser.new_page(viewport={"width": 720, "height": 560})
        problems = watch_console(page)
        await page.goto(f"{base_url}/leaderboards/arena?user=bob&top=5")
        rows = page.locator("#rows tr")
        await expect(page.locator("#status")).to_have_text("live")
        await expect(rows.first).to_contain_text("ann")
        await expect(page.locator("#me-rank")).to_have_text("#2")
        # a competition without a reset schedule: one window, so no tabs and no countdown
        await expect(page.locator("#tabs [role=tab]")).to_have_count(0)
        await expect(page.locator("#countdown")).to_be_hidden()

        await ranker.set_scores(competition, {"bob": 150.0})
        await expect(rows.first).to_contain_text("bob", timeout=5000)
        await expect(rows.first).to_contain_text("150")
        await expect(rows.nth(1)).to_contain_text("ann")
        await expect(page.locator("#me-rank")).to_have_text("#1")
        await page.screenshot(path=str(shots / "no-reset.png"))
        await page.close()  # nothing of it runs once the servers stop
    assert problems == [], f"the page logged errors (CSP?): {problems}"


async def test_page_shows_the_team_board_live(
    settings: PlatformSettings, ranker: RankerStandIn, browser: Browser, shots: Path
) -> None:
    competition = await ranker.competition(
        "clans", name="Clans", teams=TeamsSetting(aggregate=TeamAggregate.SUM)
    )
    await ranker.set_scores(competition, {"ann": 30.0, "bob": 20.0, "cat": 5.0})
    teams = team_board(competition)
    await ranker.set_scores(teams, {"red": 35.0, "blue": 20.0})
    async with running_app(create_app(settings), settings) as base_url:
        page = await browser.new_page(viewport={"width": 720, "height": 640})
        problems = watch_console(page)
        await page.goto(f"{base_url}/leaderboards/clans")
        await expect(page.locator("#status")).to_have_text("live")
        team_rows = page.locator("#team-rows li")
        await expect(page.locator("#teams")).to_be_visible()
        await expect(team_rows).to_have_count(2)
        await expect(team_rows.first).to_contain_text("red")
        await expect(team_rows.first).to_contain_text("35")
        await ranker.set_scores(teams, {"blue": 50.0})  # pushed over the ?board=teams socket
        await expect(team_rows.first).to_contain_text("blue", timeout=5000)
        await expect(team_rows.first).to_contain_text("#1")
        await expect(team_rows.nth(1)).to_contain_text("red")
        await page.screenshot(path=str(shots / "team-board.png"))
        await page.close()
    assert problems == [], f"the page logged errors (CSP?): {problems}"


async def test_the_viewer_card_shows_the_attempts_used_in_a_tournament(
    settings: PlatformSettings, ranker: RankerStandIn, browser: Browser
) -> None:
    competition = await ranker.competition("trials", name="Trials", max_attempts=3)
    await ranker.set_scores(competition, {"ann": 12.0, "bob": 8.0})
    # what the ranker stores once it applied one of bob's attempts (no reset: all-time)
    await ranker.pool.execute("INSERT INTO attempts VALUES ('trials', 'alltime', 'bob', 1)")
    async with running_app(create_app(settings), settings) as base_url:
        page = await browser.new_page(viewport={"width": 720, "height": 560})
        problems = watch_console(page)
        await page.goto(f"{base_url}/leaderboards/trials?user=bob")
        await expect(page.locator("#status")).to_have_text("live")
        await expect(page.locator("#me-rank")).to_have_text("#2")
        await expect(page.locator("#me-attempts")).to_have_text("1 of 3 attempts used")
        await expect(page.locator("#teams")).to_be_hidden()  # no team board
        await page.close()
    assert problems == [], f"the page logged errors (CSP?): {problems}"


async def _sprint(ranker: RankerStandIn) -> tuple[Competition, str, list[str]]:
    """A daily competition with standings in all-time, today and the day before."""
    competition = await ranker.competition(
        "sprint", name="Spring Sprint 2026", reset=ResetSchedule.DAILY
    )
    now = datetime.now(UTC)
    today = resolve_window(competition.reset, CURRENT, now, competition.timezone)
    past = previous_periods(competition.reset, now, competition.timezone, 3)
    await ranker.set_scores(competition, {"ann": 120.0, "bob": 80.0, "cat": 45.5})
    await ranker.set_scores(competition, {"dan": 30.0, "ann": 12.0}, window=today)
    await ranker.set_scores(competition, {"eve": 77.0}, window=past[0])
    return competition, today, past


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_live_page_movement_viewer_card_and_window_tabs(
    settings: PlatformSettings,
    ranker: RankerStandIn,
    browser: Browser,
    shots: Path,
    viewport: str,
) -> None:
    competition, today, past = await _sprint(ranker)
    async with running_app(create_app(settings), settings) as base_url:
        page = await browser.new_page(viewport=VIEWPORTS[viewport])
        problems = watch_console(page)
        await page.goto(f"{base_url}/leaderboards/sprint?user=bob&top=5")
        rows = page.locator("#rows tr")
        status = page.locator("#status")
        await expect(status).to_have_text("live")
        await expect(status).to_have_attribute("data-state", "live")
        await expect(page.locator("#title")).to_have_text("Spring Sprint 2026")
        await expect(rows.first).to_contain_text("ann")
        # the viewer's card: rank and score from the socket, percentile from /about
        await expect(page.locator("#me-rank")).to_have_text("#2")
        await expect(page.locator("#me-score")).to_have_text("80 pts")
        await expect(page.locator("#me-percentile")).to_have_text("66th percentile · 3 ranked")
        # tabs: all-time, today, the three days before; a countdown to today's end
        tabs = page.get_by_role("tab")
        await expect(tabs).to_have_count(5)
        await expect(tabs).to_have_text(["All time", "Today", *past])
        await expect(tabs.first).to_have_attribute("aria-selected", "true")
        await expect(page.locator("#countdown")).to_have_text(
            re.compile(r"^Period ends in \d{2}:\d{2}:\d{2}$")
        )
        await page.screenshot(path=str(shots / f"{viewport}-snapshot.png"))

        # bob overtakes ann, fay enters: ▲ / ▼ / new on the moved rows, announced politely
        await ranker.set_scores(competition, {"bob": 150.0, "fay": 100.0})
        await expect(rows.first).to_contain_text("bob", timeout=5000)
        bob, ann, fay, cat = (
            page.locator(f"#rows tr[data-user-id={u}]") for u in ("bob", "ann", "fay", "cat")
        )
        await expect(bob.locator(".move.up")).to_be_visible()
        await expect(bob.locator(".move.up")).to_contain_text("▲1")
        await expect(bob).to_have_class(re.compile(r"\bmoved-up\b"))
        await expect(ann.locator(".move.down")).to_contain_text("▼1")
        await expect(cat.locator(".move.down")).to_contain_text("▼1")
        await expect(fay.locator(".move.new")).to_be_visible()
        await expect(fay).to_have_class(re.compile(r"\bentered\b"))
        animations = await bob.locator("td").first.evaluate(
            "cell => getComputedStyle(cell).animationName"
        )
        assert animations == "rise"
        announcer = page.locator("#announcer")
        await expect(announcer).to_have_attribute("aria-live", "polite")
        await expect(announcer).to_contain_text("You are now #1")
        await expect(announcer).to_contain_text("bob up to #1")
        await expect(announcer).to_contain_text("fay enters at #3")
        await expect(page.locator("#me-rank")).to_have_text("#1")
        await expect(page.locator("#me-move .move.up")).to_contain_text("▲1")
        await expect(page.locator("#me-percentile")).to_have_text("100th percentile · 4 ranked")
        await page.screenshot(path=str(shots / f"{viewport}-moved.png"))

        # the keyboard: arrows move along the tablist and select (today's board)
        await page.evaluate(
            """() => {
              const shown = document.getElementById("status");
              window.statesSeen = [];
              new MutationObserver(() => window.statesSeen.push(shown.dataset.state))
                .observe(shown, { attributes: true, attributeFilter: ["data-state"] });
            }"""
        )
        await tabs.first.focus()
        await page.keyboard.press("ArrowRight")
        today_tab = tabs.nth(1)
        await expect(today_tab).to_be_focused()
        await expect(today_tab).to_have_attribute("aria-selected", "true")
        await expect(tabs.first).to_have_attribute("aria-selected", "false")
        await expect(today_tab).to_have_attribute("tabindex", "0")
        await expect(rows.first).to_contain_text("dan")
        await expect(rows.nth(1)).to_contain_text("ann")
        await expect(status).to_have_text("live")
        # a window change is a new connection, not a lost one
        assert await page.evaluate("window.statesSeen") == ["connecting", "live"]
        await expect(page.locator("#me-rank")).to_have_text("not ranked yet")
        assert "window=current" in page.url
        assert await today_tab.evaluate("tab => getComputedStyle(tab).outlineStyle !== 'none'"), (
            "a focused tab shows a focus ring"
        )
        await page.screenshot(path=str(shots / f"{viewport}-today.png"))
        # today's board is live too
        await ranker.set_scores(competition, {"bob": 40.0}, window=today)
        await expect(rows.first).to_contain_text("bob")
        await expect(page.locator("#me-rank")).to_have_text("#1")

        await page.keyboard.press("ArrowRight")
        await expect(tabs.nth(2)).to_be_focused()
        await expect(rows.first).to_contain_text("eve")
        await page.keyboard.press("End")
        await expect(tabs.nth(4)).to_have_attribute("aria-selected", "true")
        await expect(rows.first).to_contain_text("no scores yet")
        await page.keyboard.press("Home")
        await expect(tabs.first).to_have_attribute("aria-selected", "true")
        await expect(rows.first).to_contain_text("bob")
        # a click works as well
        await tabs.nth(2).click()
        await expect(rows.first).to_contain_text("eve")
        # through the tabs faster than a socket opens: each window's socket is closed once it
        # is open, not while connecting (which logs an error in the console, checked below)
        for key in ("End", "Home", "End", "Home"):
            await page.keyboard.press(key)
        await expect(tabs.first).to_have_attribute("aria-selected", "true")
        await expect(rows.first).to_contain_text("bob")

        if viewport == "phone":
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, "the page scrolls sideways at phone width"
        await page.close()  # nothing of it runs once the servers stop
    assert problems == [], f"the page logged errors (CSP?): {problems}"


async def test_connection_state_goes_reconnecting_and_back_to_live(
    settings: PlatformSettings, ranker: RankerStandIn, browser: Browser, shots: Path
) -> None:
    competition = await ranker.competition("relay", name="Relay")
    await ranker.set_scores(competition, {"ann": 10.0, "bob": 5.0})
    port = free_port()
    page = await browser.new_page(viewport=DESKTOP)
    status = page.locator("#status")
    async with running_app(create_app(settings), settings, port=port) as base_url:
        await page.goto(f"{base_url}/leaderboards/relay")
        await expect(status).to_have_attribute("data-state", "live")
    # the notifier is gone: the page says so and counts down to its next attempt
    await expect(status).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    await expect(status).to_have_text(re.compile(r"^reconnecting in \d+ s$"))
    await expect(page.locator("#announcer")).to_have_text("Connection lost, reconnecting.")
    await page.screenshot(path=str(shots / "reconnecting.png"))
    async with running_app(create_app(settings), settings, port=port):
        # back-off is at most 30 s (x1.5 jitter) between attempts
        await expect(status).to_have_attribute("data-state", "live", timeout=50_000)
        await expect(page.locator("#announcer")).to_have_text("Live again.")
        await ranker.set_scores(competition, {"bob": 20.0})
        await expect(page.locator("#rows tr").first).to_contain_text("bob")
        await expect(page.locator("#rows tr").first.locator(".move.up")).to_be_visible()


@contextlib.asynccontextmanager
async def organiser_site(settings: PlatformSettings) -> AsyncIterator[str]:
    """Another origin (a port of its own) whose page at ``/screen?src=`` frames the board.

    A real local server, not a routed fake: Chrome's local network access checks refuse a
    page it takes for public to frame 127.0.0.1."""

    async def screen(request: Request) -> Response:
        source = html.escape(request.query_params["src"], quote=True)
        return HTMLResponse(
            '<!doctype html><html><body style="background:#fef3c7"><h1>Organiser</h1>'
            f'<iframe id="board" src="{source}" width="400" height="420"></iframe>'
            "</body></html>"
        )

    app = Starlette(routes=[StarletteRoute("/screen", screen)])
    async with running_app(app, settings) as base_url:
        yield base_url


async def test_embed_mode_headers_and_framing(
    settings: PlatformSettings, ranker: RankerStandIn, browser: Browser, shots: Path
) -> None:
    competition = await ranker.competition("derby", name="Derby")
    await ranker.set_scores(competition, {"ann": 3.0, "bob": 2.0})
    async with organiser_site(settings) as host_origin:
        allowing = settings.model_copy(
            update={"embed_allowed_origins": [host_origin, "https://*.events.example"]}
        )

        async def host_page(page: Page, base_url: str) -> None:
            source = f"{base_url}/leaderboards/derby?embed=1&theme=light"
            await page.goto(f"{host_origin}/screen?{urlencode({'src': source})}")

        # default settings: every page refuses to be framed, embed or not
        async with (
            running_app(create_app(settings), settings) as base_url,
            httpx.AsyncClient(base_url=base_url) as client,
        ):
            for path in ("/leaderboards/derby", "/leaderboards/derby?embed=1"):
                response = await client.get(path)
                assert response.status_code == 200
                assert response.headers["x-frame-options"] == "DENY"
                assert response.headers["content-security-policy"].endswith(
                    "frame-ancestors 'none'"
                )
            bad = await client.get("/leaderboards/derby?embed=yes")
            assert bad.status_code == 422
            assert bad.json()["error"]["details"][0]["field"] == "query.embed"
            page = await browser.new_page(viewport=DESKTOP)
            await host_page(page, base_url)
            await page.wait_for_timeout(1500)
            framed = [frame for frame in page.frames if frame is not page.main_frame]
            assert len(framed) == 1
            assert await framed[0].locator("#rows").count() == 0, "a framed page rendered anyway"
            await page.close()

        # with origins: ?embed=1 names them (and sends no X-Frame-Options); the full page not
        async with (
            running_app(create_app(allowing), allowing) as base_url,
            httpx.AsyncClient(base_url=base_url) as client,
        ):
            embedded = await client.get("/leaderboards/derby?embed=1")
            assert "x-frame-options" not in embedded.headers
            assert embedded.headers["content-security-policy"].endswith(
                f"frame-ancestors {host_origin} https://*.events.example"
            )
            assert '<html lang="en" class="embed theme-auto">' in embedded.text
            full = await client.get("/leaderboards/derby")
            assert full.headers["x-frame-options"] == "DENY"
            assert full.headers["content-security-policy"].endswith("frame-ancestors 'none'")
            about = await client.get("/leaderboards/derby/about?user=bob")
            assert about.status_code == 200
            assert about.json()["me"] == {
                "user_id": "bob",
                "rank": 2,
                "score": 2.0,
                "total": 2,
                "percentile": 50.0,
            }

            page = await browser.new_page(viewport=DESKTOP)
            problems = watch_console(page)
            await host_page(page, base_url)
            frame = page.frame_locator("#board")
            await expect(frame.locator("#rows tr").first).to_contain_text("ann")
            await expect(frame.locator("#status")).to_have_attribute("data-state", "live")
            await expect(frame.locator("#title")).to_be_hidden()  # no chrome
            await expect(frame.locator("footer")).to_be_hidden()
            background = await frame.locator("body").evaluate(
                "body => getComputedStyle(body).backgroundColor"
            )
            assert background == "rgba(0, 0, 0, 0)", "embed mode is transparent"
            await ranker.set_scores(competition, {"bob": 9.0})
            await expect(frame.locator("#rows tr").first.locator(".move.up")).to_be_visible()
            await page.wait_for_timeout(1500)  # the movement animation has ended
            await page.screenshot(path=str(shots / "embedded.png"))
            await page.close()  # nothing of it runs once the servers stop
    assert problems == [], f"the embedded page logged errors: {problems}"


async def test_private_competition_page_with_a_token_in_the_fragment(
    settings: PlatformSettings,
    ranker: RankerStandIn,
    browser: Browser,
    token_for: Callable[..., str],
) -> None:
    competition = await ranker.competition("vault", name="Vault Cup", visibility=Visibility.PRIVATE)
    await ranker.set_scores(competition, {"ann": 7.0})
    reader = token_for("ann", "leaderboards:read")
    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        anonymous = await client.get("/leaderboards/vault/about")
        assert anonymous.status_code == 401
        weak = await client.get(
            "/leaderboards/vault/about",
            headers={"authorization": f"Bearer {token_for('eve', 'scores:write')}"},
        )
        assert weak.status_code == 403
        missing = await client.get("/leaderboards/nope/about")
        assert missing.status_code == 404
        assert missing.json()["error"]["details"]["field"] == "path.competition_id"
        bad_window = await client.get("/leaderboards/vault/about?window=2026-11-25")
        assert bad_window.status_code == 401  # who may read it is checked first
        page = await browser.new_page(viewport=DESKTOP)
        problems = watch_console(page)
        await page.goto(f"{base_url}/leaderboards/vault?user=ann#token={reader}")
        await expect(page.locator("#status")).to_have_text("live")
        await expect(page.locator("#title")).to_have_text("Vault Cup")
        await expect(page.locator("#me-percentile")).to_have_text("100th percentile · 1 ranked")
        # without the token the socket is refused for good: no reconnect loop
        anonymous_page = await browser.new_page(viewport=DESKTOP)
        await anonymous_page.goto(f"{base_url}/leaderboards/vault")
        await expect(anonymous_page.locator("#status")).to_have_attribute("data-state", "closed")
        await expect(anonymous_page.locator("#status")).to_contain_text("token")
        await page.close()  # nothing of it runs once the servers stop
    assert problems == [], f"the page logged errors: {problems}"


# WCAG 2 contrast of every element that holds text, against the first opaque background
# behind it (the page's own in both schemes).
_CONTRAST_JS = """
() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (node) => {
    for (let at = node; at; at = at.parentElement) {
      const colour = rgb(getComputedStyle(at).backgroundColor);
      if (colour.length === 3 || colour[3] > 0.99) return colour.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const worst = [];
  for (const node of document.querySelectorAll("body *")) {
    const own = Array.from(node.childNodes).some((c) => c.nodeType === 3 && c.textContent.trim());
    const box = node.getBoundingClientRect();
    if (!own || box.width <= 1 || box.height <= 1) continue;
    if (getComputedStyle(node).visibility === "hidden") continue;
    const fg = lum(rgb(getComputedStyle(node).color).slice(0, 3));
    const bg = lum(background(node));
    const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
    const text = node.textContent.trim().slice(0, 20);
    if (ratio < 4.5) worst.push(`${node.tagName}.${node.className} ${text} ${ratio.toFixed(2)}`);
  }
  return worst;
}
"""


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_text_contrast_is_at_least_4_5_to_1(
    settings: PlatformSettings, ranker: RankerStandIn, browser: Browser, shots: Path, theme: str
) -> None:
    competition, _, _ = await _sprint(ranker)
    async with running_app(create_app(settings), settings) as base_url:
        page = await browser.new_page(viewport=DESKTOP)
        await page.goto(f"{base_url}/leaderboards/sprint?user=bob&theme={theme}")
        await expect(page.locator("#status")).to_have_text("live")
        await ranker.set_scores(competition, {"bob": 150.0, "fay": 100.0})
        await expect(page.locator("#rows tr[data-user-id=fay] .move.new")).to_be_visible()
        await expect(page.locator("#me-percentile")).not_to_be_empty()
        await page.wait_for_timeout(1500)  # the entry animations have ended
        assert await page.evaluate(_CONTRAST_JS) == []
        await page.screenshot(path=str(shots / f"theme-{theme}.png"))
        await page.close()  # nothing of it runs once the servers stop


async def test_a_score_posted_to_ingest_moves_a_row_on_the_page(
    settings: PlatformSettings,
    browser: Browser,
    token_for: Callable[..., str],
    artifacts_dir: Path,
    shots: Path,
) -> None:
    """The whole way: POST /api/v1/scores -> a real ``podium ranker`` -> the notifier ->
    ▲ on the page (phone width)."""
    admin, game = token_for("ops", "admin"), token_for("game", "scores:write:any")
    with ranker_process(settings, artifacts_dir / "live-page-ranker.log"):
        async with (
            running_app(create_ingest(settings), settings) as ingest,
            running_app(create_app(settings), settings) as notifier,
            httpx.AsyncClient(base_url=ingest, timeout=10) as client,
        ):
            created = await client.post(
                "/api/v1/competitions",
                json={"id": "marathon", "name": "City Marathon", "operator": "best"},
                headers={"Authorization": f"Bearer {admin}"},
            )
            assert created.status_code == 201, created.text

            async def post(event_id: str, user_id: str, value: float) -> None:
                response = await client.post(
                    "/api/v1/scores",
                    json={
                        "event_id": event_id,
                        "competition_id": "marathon",
                        "user_id": user_id,
                        "value": value,
                    },
                    headers={"Authorization": f"Bearer {game}"},
                )
                assert response.status_code == 202, response.text

            page = await browser.new_page(viewport=PHONE)
            problems = watch_console(page)
            await page.goto(f"{notifier}/leaderboards/marathon?user=bob")
            await expect(page.locator("#status")).to_have_text("live")
            await expect(page.locator("#title")).to_have_text("City Marathon")
            await post("m1", "ann", 30.0)
            await post("m2", "bob", 20.0)
            rows = page.locator("#rows tr")
            # the first events also wait for the ranker to join its group
            await expect(rows.nth(1)).to_contain_text("bob", timeout=60_000)
            await expect(page.locator("#me-rank")).to_have_text("#2")
            await post("m3", "bob", 45.0)
            await expect(rows.first).to_contain_text("bob", timeout=10_000)
            await expect(rows.first.locator(".move.up")).to_contain_text("▲1")
            await expect(rows.nth(1).locator(".move.down")).to_contain_text("▼1")
            await expect(page.locator("#me-rank")).to_have_text("#1")
            await expect(page.locator("#announcer")).to_contain_text("bob up to #1")
            await page.wait_for_timeout(1000)
            await page.screenshot(path=str(shots / "phone-posted-score.png"))
            await page.close()  # nothing of it runs once the servers stop
    assert problems == [], f"the page logged errors: {problems}"
