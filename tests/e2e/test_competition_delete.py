"""Deleting a competition end to end (issue #15): HTTP, PostgreSQL, Redis, sockets, the ranker.

The ranker is a real ``podium ranker`` process; ingest, query and notifier are real HTTP
servers in this process; broker, PostgreSQL and Redis are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from services.ingest.app import create_app as create_ingest
from services.notifier.app import create_app as create_notifier
from services.query.app import create_app as create_query
from shared.kafka import create_producer
from shared.leaderboard_store import DELETED_MARKER_TTL_S, is_tombstone
from shared.redis_keys import built_key, competition_key_pattern
from shared.schemas.score_event import ScoreEvent, encode_topic_message
from tests.support.notifier_clients import closed_with, connect, receive, ws_url
from tests.support.notifier_driver import ranker_stand_in
from tests.support.ranker_harness import ranker
from tests.support.servers import running_app
from tests.support.topic_reader import read_topic


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _keys(
    redis: Redis, settings: PlatformSettings, cid: str
) -> dict[str, bytes | str | None]:
    pattern = competition_key_pattern(settings.redis_key_prefix, cid)
    keys = [key async for key in redis.scan_iter(match=pattern, count=1000)]
    found: dict[str, bytes | str | None] = {}
    for key in keys:
        found[key.decode()] = await redis.get(key) if key.endswith(b"built") else None
    return found


async def _only_tombstone(redis: Redis, settings: PlatformSettings, cid: str) -> None:
    """Redis holds nothing of ``cid`` but its expiring tombstone marker."""
    marker = built_key(settings.redis_key_prefix, cid)
    keys = await _keys(redis, settings, cid)
    assert set(keys) <= {marker}, keys
    if keys:
        assert is_tombstone(keys[marker])
        assert 0 < await redis.ttl(marker) <= DELETED_MARKER_TTL_S


async def _rows(pool: asyncpg.Pool, table: str, cid: str) -> int:
    column = "id" if table == "competitions" else "competition_id"
    count = await pool.fetchval(
        f"SELECT count(*) FROM {table} WHERE {column} = $1",  # test constants
        cid,
    )
    return int(count)


async def _publish_raw(settings: PlatformSettings, cid: str, event_ids: list[str]) -> None:
    """Scores on the topic as a replica whose cache still had the competition would send."""
    producer = create_producer(settings)
    await producer.start()
    try:
        now = datetime.now(UTC)
        for event_id in event_ids:
            event = ScoreEvent(
                event_id=event_id,
                competition_id=cid,
                user_id="late",
                value=99,
                ts=now,
                received_at=now,
            )
            await producer.send_and_wait(
                settings.topic_score_events, encode_topic_message(event), key=cid.encode()
            )
    finally:
        await producer.stop()


async def _dead_lettered_ids(settings: PlatformSettings, reason: bytes) -> list[str]:
    """The event id of every dead letter with ``reason`` so far (a dead letter's value is the
    original record's: one score event's JSON). Parsed once per check, not searched per event:
    the racing test's checker was quadratic and spent most of the test's CPU."""
    records = await read_topic(settings, settings.topic_dead_letters)
    return [
        json.loads(record.value)["event_id"]
        for record in records
        if ("reason", reason) in list(record.headers)
    ]


async def _until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.2)


async def test_delete_removes_everything_closes_sockets_and_dead_letters_later_events(
    settings: PlatformSettings,
    token_for: Callable[..., str],
    artifacts_dir: Path,
    pool: asyncpg.Pool,
    redis_client: Redis,
) -> None:
    admin, server = _auth(token_for("ops", "admin")), _auth(token_for("game", "scores:write:any"))
    with ranker(settings, artifacts_dir / "delete-e2e-ranker.log"):
        async with (
            running_app(create_ingest(settings), settings) as ingest,
            running_app(create_notifier(settings), settings) as notifier,
            running_app(create_query(settings), settings) as query,
            httpx.AsyncClient(timeout=20) as client,
        ):
            for cid in ("gone", "kept"):
                created = await client.post(
                    f"{ingest}/api/v1/competitions",
                    json={"id": cid, "name": cid, "operator": "best", "reset": "daily"},
                    headers=admin,
                )
                assert created.status_code == 201, created.text
                for user, value in (("ann", 3), ("bob", 5)):
                    posted = await client.post(
                        f"{ingest}/api/v1/scores",
                        json={
                            "event_id": f"{cid}-{user}",
                            "competition_id": cid,
                            "user_id": user,
                            "value": value,
                        },
                        headers=server,
                    )
                    assert posted.status_code == 202, posted.text

            async def applied() -> bool:
                return await _rows(pool, "standings", "gone") == 4  # 2 users x 2 windows

            await _until(applied, 60, "the ranker applied the first scores")
            top = await client.get(f"{query}/api/v1/leaderboards/gone/top")
            assert [e["user_id"] for e in top.json()["entries"]] == ["bob", "ann"]
            kept_keys = await _keys(redis_client, settings, "kept")
            assert len(kept_keys) > 3

            async with (
                connect(ws_url(notifier, "gone")) as alltime,
                connect(ws_url(notifier, "gone", "window=current&user=bob")) as current,
                connect(ws_url(notifier, "kept")) as other,
            ):
                for socket in (alltime, current, other):
                    assert (await receive(socket))["type"] == "snapshot"

                deleted = await client.delete(f"{ingest}/api/v1/competitions/gone", headers=admin)
                assert deleted.status_code == 204, deleted.text
                assert deleted.content == b""

                for socket in (alltime, current):
                    code, reason, _ = await closed_with(socket)
                    assert (code, reason) == (4404, "competition deleted")
                # another competition's socket stays open and served
                await other.send('{"type": "ping"}')
                assert (await receive(other))["type"] == "pong"

            await _only_tombstone(redis_client, settings, "gone")
            for table in ("competitions", "standings", "standings_versions", "banned_users"):
                assert await _rows(pool, table, "gone") == 0, table
            # kept for audit and exact dedup
            assert await _rows(pool, "score_events", "gone") == 2
            assert await _keys(redis_client, settings, "kept") == kept_keys
            assert await _rows(pool, "standings", "kept") == 4

            # reads and reconnects answer not found; a second DELETE is 404
            async def query_forgot() -> bool:
                response = await client.get(f"{query}/api/v1/leaderboards/gone/top")
                return response.status_code == 404

            await _until(query_forgot, 10, "the query API answers 404")
            async with connect(ws_url(notifier, "gone")) as again:
                code, _, frames = await closed_with(again)
                assert code == 1008
                assert frames[0]["error"]["code"] == "not_found"
            second = await client.delete(f"{ingest}/api/v1/competitions/gone", headers=admin)
            assert second.status_code == 404
            assert second.json()["error"]["code"] == "not_found"

            # ingest refuses new scores; records already on the topic are dead-lettered
            refused = await client.post(
                f"{ingest}/api/v1/scores",
                json={"event_id": "new", "competition_id": "gone", "user_id": "ann", "value": 1},
                headers=server,
            )
            assert refused.status_code == 422
            assert refused.json()["error"]["details"]["reason"] == "unknown_competition"
            late_ids = [f"late-{n}" for n in range(5)]
            await _publish_raw(settings, "gone", late_ids)

            async def dead_lettered() -> bool:
                letters = await _dead_lettered_ids(settings, b"unknown_competition")
                return sorted(i for i in letters if i.startswith("late-")) == sorted(late_ids)

            await _until(dead_lettered, 60, "the late events are dead-lettered")
            await _only_tombstone(redis_client, settings, "gone")
            assert await _rows(pool, "standings", "gone") == 0
            assert await _rows(pool, "standings_versions", "gone") == 0


async def test_a_deletion_racing_in_flight_events_and_reads_leaves_nothing_behind(
    settings: PlatformSettings,
    token_for: Callable[..., str],
    artifacts_dir: Path,
    pool: asyncpg.Pool,
    redis_client: Redis,
) -> None:
    """Scores stream in (through ingest and straight onto the topic) and readers hammer the
    board (each miss rebuilds it from PostgreSQL) while the competition is deleted: once the
    ranker has dealt with every event, neither PostgreSQL nor Redis holds anything of it."""
    admin, server = _auth(token_for("ops", "admin")), _auth(token_for("game", "scores:write:any"))
    cid = "race"
    with ranker(settings, artifacts_dir / "delete-race-ranker.log", ranker_batch_size=50):
        async with (
            running_app(create_ingest(settings), settings) as ingest,
            running_app(create_query(settings), settings) as query,
            httpx.AsyncClient(timeout=30) as client,
        ):
            created = await client.post(
                f"{ingest}/api/v1/competitions",
                json={"id": cid, "name": cid, "operator": "sum", "reset": "weekly"},
                headers=admin,
            )
            assert created.status_code == 201, created.text
            accepted: list[str] = []
            stop = asyncio.Event()

            async def post_scores(writer: int) -> None:
                sequence = 0
                while not stop.is_set():
                    batch = [
                        {
                            "event_id": f"{cid}-{writer}-{sequence}-{n}",
                            "competition_id": cid,
                            "user_id": f"u{n % 40}",
                            "value": 1,
                        }
                        for n in range(50)
                    ]
                    sequence += 1
                    response = await client.post(
                        f"{ingest}/api/v1/scores/batch", json={"events": batch}, headers=server
                    )
                    if response.status_code == 429:
                        await asyncio.sleep(float(response.headers["Retry-After"]))
                        continue
                    assert response.status_code == 202, response.text
                    for result in response.json()["results"]:
                        if result["status"] == "accepted":
                            accepted.append(result["event_id"])

            async def read_board() -> None:
                while not stop.is_set():
                    await client.get(f"{query}/api/v1/leaderboards/{cid}/top?limit=10")
                    # lose the board now and then: the next read rebuilds it from a pool
                    await redis_client.delete(built_key(settings.redis_key_prefix, cid))

            async def applied_some() -> bool:
                return await _rows(pool, "score_events", cid) > 200

            writers = [asyncio.create_task(post_scores(writer)) for writer in range(2)]
            readers = [asyncio.create_task(read_board()) for _ in range(2)]
            try:
                await _until(applied_some, 60, "the ranker applies scores")
                deleted = await client.delete(f"{ingest}/api/v1/competitions/{cid}", headers=admin)
                assert deleted.status_code == 204, deleted.text
                await asyncio.sleep(0.5)  # in-flight posts and reads carry on past it
            finally:
                stop.set()
                for outcome in await asyncio.gather(*writers, *readers, return_exceptions=True):
                    # a post after its replica's cache forgot the competition is refused
                    if isinstance(outcome, AssertionError) and "unknown_competition" in str(
                        outcome
                    ):
                        continue
                    if isinstance(outcome, BaseException):
                        raise outcome
            late_ids = [f"late-{uuid.uuid4().hex[:8]}-{n}" for n in range(20)]
            await _publish_raw(settings, cid, late_ids)
            published = set(accepted) | set(late_ids)

            async def every_event_handled() -> bool:
                applied = {
                    row["event_id"]
                    for row in await pool.fetch(
                        "SELECT event_id FROM score_events WHERE competition_id = $1", cid
                    )
                }
                dead = set(await _dead_lettered_ids(settings, b"unknown_competition"))
                return published <= applied | dead

            await _until(every_event_handled, 120, "the ranker handled every event")
            dead_count = len(published) - await _rows(pool, "score_events", cid)
            assert dead_count >= len(late_ids)
            await _only_tombstone(redis_client, settings, cid)
            for table in ("competitions", "standings", "standings_versions"):
                assert await _rows(pool, table, cid) == 0, table
            gone = await client.get(f"{query}/api/v1/leaderboards/{cid}/top")
            assert gone.status_code == 404


async def test_a_notifier_that_missed_the_deleted_message_closes_at_the_next_wake_up(
    settings_factory: Callable[..., PlatformSettings], settings: PlatformSettings
) -> None:
    """The deleted message is lost (the row is deleted behind the notifier's back): once the
    cached competition expires, the room's next wake-up finds it gone and closes its sockets
    with the same code."""
    quick = settings_factory(competition_cache_ttl_s=0.2)
    async with ranker_stand_in(quick) as stand_in:
        competition = await stand_in.competition("quiet")
        await stand_in.set_scores(competition, {"ann": 5})
        async with (
            running_app(create_notifier(quick), quick) as notifier,
            connect(ws_url(notifier, "quiet")) as socket,
        ):
            assert (await receive(socket))["type"] == "snapshot"
            await stand_in.pool.execute("DELETE FROM competitions WHERE id = 'quiet'")
            await asyncio.sleep(0.5)  # past the competition cache's TTL
            await stand_in.set_scores(competition, {"bob": 7})  # wakes the room
            code, reason, _ = await closed_with(socket)
            assert (code, reason) == (4404, "competition deleted")
