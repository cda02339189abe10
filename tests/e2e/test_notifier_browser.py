"""The live page in a real browser: Debian's chromium driven by Playwright (no browser download)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, async_playwright, expect

from podium.settings import PlatformSettings
from services.notifier.app import create_app
from tests.support.notifier_driver import RankerStandIn, ranker_stand_in
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


async def test_page_shows_the_new_leader_without_reload(
    settings: PlatformSettings, ranker: RankerStandIn, chromium: Path, artifacts_dir: Path
) -> None:
    competition = await ranker.competition("arena")
    await ranker.set_scores(competition, {"ann": 120.0, "bob": 80.0, "cat": 45.5})
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    async with (
        running_app(create_app(settings), settings) as base_url,
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 720, "height": 560})
            page.on("console", on_console)
            await page.goto(f"{base_url}/leaderboards/arena?user=bob&top=5")
            rows = page.locator("#rows tr")
            await expect(page.locator("#status")).to_have_text("live")
            await expect(rows.first).to_contain_text("ann")
            await expect(page.locator("#me-rank")).to_have_text("#2")

            await ranker.set_scores(competition, {"bob": 150.0})
            await expect(rows.first).to_contain_text("bob", timeout=5000)
            await expect(rows.first).to_contain_text("150")
            await expect(rows.nth(1)).to_contain_text("ann")
            await expect(page.locator("#me-rank")).to_have_text("#1")
            await page.screenshot(path=str(artifacts_dir / "notifier-live-page.png"))
        finally:
            await browser.close()
    assert problems == [], f"the page logged errors (CSP?): {problems}"
