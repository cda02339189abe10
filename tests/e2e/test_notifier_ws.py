"""The notifier's WebSocket over the real broker, Redis and PostgreSQL, with real clients."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest

from podium.settings import PlatformSettings
from services.notifier.app import create_app
from shared.schemas.competition import Visibility
from tests.conftest import SettingsFactory
from tests.support.notifier_clients import closed_with, connect, leaders, receive, ws_url
from tests.support.notifier_driver import RankerStandIn, ranker_stand_in
from tests.support.servers import running_app


@pytest.fixture
async def ranker(settings: PlatformSettings) -> AsyncIterator[RankerStandIn]:
    async with ranker_stand_in(settings) as stand_in:
        yield stand_in


async def test_snapshot_then_update_with_new_top_within_1s(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    competition = await ranker.competition("race")
    await ranker.set_scores(competition, {"ann": 50, "bob": 40, "cat": 30})
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "race", "top=3")) as ws,
    ):
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["competition_id"] == "race"
        assert snapshot["window"] == "alltime"
        assert leaders(snapshot) == [("ann", 50.0), ("bob", 40.0), ("cat", 30.0)]
        assert [entry["rank"] for entry in snapshot["top"]] == [1, 2, 3]
        assert "me" not in snapshot

        published_at = time.monotonic()
        change = await ranker.set_scores(competition, {"cat": 99})
        update = await receive(ws, timeout_s=1.0)
        assert time.monotonic() - published_at < 1.0
        assert update["type"] == "update"
        assert update["version"] == change.version > snapshot["version"]
        assert leaders(update) == [("cat", 99.0), ("ann", 50.0), ("bob", 40.0)]


async def test_me_follows_a_user_passed_by_someone_else(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    competition = await ranker.competition("follow")
    await ranker.set_scores(competition, {f"p{i}": 100 - i for i in range(5)})
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "follow", "top=2&user=p4")) as ws,
    ):
        snapshot = await receive(ws)
        assert snapshot["me"] == {"rank": 5, "score": 96.0}
        # a newcomer outside the visible top passes p4: only p4's rank changes
        await ranker.set_scores(competition, {"newbie": 97})
        update = await receive(ws)
        assert update["me"] == {"rank": 6, "score": 96.0, "previous_rank": 5}
        assert "top" not in update
        # a user who is not ranked yet gets null, then a rank
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "follow", "user=ghost")) as ws,
    ):
        assert (await receive(ws))["me"] is None
        await ranker.set_scores(competition, {"ghost": 1000})
        update = await receive(ws)
        assert update["me"] == {"rank": 1, "score": 1000.0, "previous_rank": None}
        assert leaders(update)[0] == ("ghost", 1000.0)


async def test_a_rebuilt_competition_sends_every_client_a_fresh_snapshot(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    competition = await ranker.competition("healed")
    await ranker.set_scores(competition, {"ann": 50, "bob": 40, "p4": 30})
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "healed", "top=2&user=p4")) as follower,
        connect(ws_url(base_url, "healed", "top=2")) as watcher,
    ):
        assert (await receive(follower))["me"] == {"rank": 3, "score": 30.0}
        assert leaders(await receive(watcher)) == [("ann", 50.0), ("bob", 40.0)]
        # Redis comes back different (rebuilt from PostgreSQL) and the ranker announces only
        # that: no user is listed, yet p4 moved and the top changed
        await ranker.set_scores(competition, {"cat": 45, "bob": 60}, publish=False)
        announced = await ranker.announce_rebuilt(competition)
        snapshots = [await receive(follower), await receive(watcher)]
        for snapshot in snapshots:
            assert snapshot["type"] == "snapshot"
            assert snapshot["version"] >= announced.version
            assert leaders(snapshot) == [("bob", 60.0), ("ann", 50.0)]
        assert snapshots[0]["me"] == {"rank": 4, "score": 30.0}
        assert "me" not in snapshots[1]


async def test_updates_only_when_what_the_client_sees_changes(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    competition = await ranker.competition("quiet")
    await ranker.set_scores(competition, {"ann": 50, "bob": 40, "cat": 30})
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "quiet", "top=1")) as ws,
    ):
        await receive(ws)
        invisible = await ranker.set_scores(competition, {"cat": 35})  # below the top 1
        visible = await ranker.set_scores(competition, {"bob": 60})
        update = await receive(ws)
        assert update["version"] == visible.version > invisible.version
        assert leaders(update) == [("bob", 60.0)]


async def test_bursts_are_coalesced_to_the_latest_state(
    settings_factory: SettingsFactory, settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    slow_rate = settings.model_copy(update={"notify_max_hz": 2.0})
    competition = await ranker.competition("burst")
    await ranker.set_scores(competition, {"ann": 1})
    async with (
        running_app(create_app(slow_rate), slow_rate) as base_url,
        connect(ws_url(base_url, "burst", "top=1")) as ws,
    ):
        await receive(ws)
        last = None
        for score in range(2, 22):
            last = await ranker.set_scores(competition, {"ann": score})
        assert last is not None
        updates = []
        while not updates or updates[-1]["version"] < last.version:
            updates.append(await receive(ws))
        assert len(updates) < 20, "every change was sent: nothing was coalesced"
        assert leaders(updates[-1]) == [("ann", 21.0)]
        versions = [update["version"] for update in updates]
        assert versions == sorted(set(versions))


async def test_resync_ping_and_unknown_messages(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    competition = await ranker.competition("resync")
    await ranker.set_scores(competition, {"ann": 1})
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "resync")) as ws,
    ):
        first = await receive(ws)
        await ws.send('{"type": "resync"}')
        again = await receive(ws)
        assert again["type"] == "snapshot"
        assert again["version"] >= first["version"]
        assert leaders(again) == [("ann", 1.0)]
        await ws.send('{"type": "ping"}')
        assert await receive(ws) == {"type": "pong"}
        await ws.send('{"type": "subscribe"}')
        error = await receive(ws)
        assert error["type"] == "error"
        assert error["error"]["code"] == "validation_failed"
        assert error["error"]["details"][0]["field"] == "message.type"
        await ws.send("not json")
        assert (await receive(ws))["error"]["code"] == "bad_request"


async def test_private_competition_refuses_anonymous_with_1008_and_no_data(
    settings: PlatformSettings, ranker: RankerStandIn, token_for: Callable[..., str]
) -> None:
    competition = await ranker.competition("secret", visibility=Visibility.PRIVATE)
    await ranker.set_scores(competition, {"ann": 7})
    async with running_app(create_app(settings), settings) as base_url:
        async with connect(ws_url(base_url, "secret")) as ws:
            code, reason, frames = await closed_with(ws)
        assert (code, frames) == (1008, [])
        assert "token" in reason

        weak = token_for("eve", "scores:write")
        async with connect(ws_url(base_url, "secret"), subprotocols=["bearer", weak]) as ws:
            code, reason, frames = await closed_with(ws)
        assert (code, frames) == (1008, [])
        assert "leaderboards:read" in reason

        reader = token_for("ann", "leaderboards:read")
        async with connect(ws_url(base_url, "secret"), subprotocols=["bearer", reader]) as ws:
            assert ws.subprotocol == "bearer"
            assert leaders(await receive(ws)) == [("ann", 7.0)]
        async with connect(ws_url(base_url, "secret", f"token={reader}")) as ws:
            assert leaders(await receive(ws)) == [("ann", 7.0)]


async def test_postgres_outage_serves_a_known_competition_and_closes_others_with_1013(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    """With PostgreSQL gone, a competition seen before is served from the competition cache
    (stale); one never seen cannot be checked, so the close says "try again" (1013), not
    "refused" (1008)."""
    uncached = settings.model_copy(update={"competition_cache_ttl_s": 0.0})  # always reload
    competition = await ranker.competition("seen")
    await ranker.set_scores(competition, {"ann": 5})
    await ranker.competition("unseen")
    app = create_app(uncached)
    async with running_app(app, uncached) as base_url:
        async with connect(ws_url(base_url, "seen")) as ws:
            assert leaders(await receive(ws)) == [("ann", 5.0)]
        await app.state.resources.require_pool().close()  # every query now fails
        async with connect(ws_url(base_url, "seen")) as ws:
            assert leaders(await receive(ws)) == [("ann", 5.0)]
        async with connect(ws_url(base_url, "unseen")) as ws:
            code, reason, frames = await closed_with(ws)
        assert (code, reason, frames) == (1013, "temporarily unavailable", [])


@pytest.mark.parametrize(
    ("competition_id", "query", "code", "field"),
    [
        ("bad-input", "top=0", "validation_failed", "query.top"),
        ("bad-input", "top=11", "validation_failed", "query.top"),
        ("bad-input", "user=no%20spaces", "validation_failed", "query.user"),
        ("bad-input", "window=2026-W01", "validation_failed", "query.window"),
        ("nobody", "", "not_found", "path.competition_id"),
    ],
)
async def test_bad_subscriptions_get_an_error_naming_the_field_then_1008(
    settings: PlatformSettings,
    ranker: RankerStandIn,
    competition_id: str,
    query: str,
    code: str,
    field: str,
) -> None:
    await ranker.competition("bad-input")
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, competition_id, query)) as ws,
    ):
        close_code, _, frames = await closed_with(ws)
    assert close_code == 1008
    assert [frame["type"] for frame in frames] == ["error"]
    error = frames[0]["error"]
    assert error["code"] == code
    details = error["details"]
    fields = (
        [item["field"] for item in details] if isinstance(details, list) else [details["field"]]
    )
    assert field in fields


async def test_capacity_oversized_and_flooding_clients_are_closed(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    limited = settings.model_copy(
        update={
            "ws_max_connections": 2,
            "ws_client_messages_per_s": 1.0,
            "ws_client_message_burst": 3,
        }
    )
    await ranker.competition("edge")
    async with running_app(create_app(limited), limited) as base_url:
        url = ws_url(base_url, "edge")
        async with connect(url) as first, connect(url) as second:
            await receive(first)
            await receive(second)
            async with connect(url) as third:
                code, reason, frames = await closed_with(third)
            assert (code, frames) == (1013, [])
            assert "capacity" in reason

            await first.send("x" * (limited.ws_max_message_bytes + 1))
            code, _, _ = await closed_with(first)
            assert code == 1009

            for _ in range(10):
                await second.send('{"type": "ping"}')
            code, reason, frames = await closed_with(second)
            assert code == 1008
            assert "too many" in reason
        # the slots are free again
        async with connect(url) as again:
            assert (await receive(again))["type"] == "snapshot"


async def test_page_is_served_with_its_csp_and_static_files(settings: PlatformSettings) -> None:
    import httpx

    async with (
        running_app(create_app(settings), settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        page = await client.get("/leaderboards/race?user=ann")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert f"connect-src 'self' ws://{base_url.removeprefix('http://')}" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert '<script src="/static/leaderboard.js"' in page.text
        script = await client.get("/static/leaderboard.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        document = (await client.get("/openapi.json")).json()
        assert "/ws/leaderboards/{competition_id}" in document["paths"]
        missing = await client.get("/leaderboards/bad%20id")
        assert missing.status_code == 404
        assert missing.json()["error"]["details"]["field"] == "path.competition_id"
