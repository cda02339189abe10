"""Scripts sent by SHA in a pipeline, on one real Redis (``shared.redis_client.execute_scripted``).

redis-py asks SCRIPT EXISTS before every execute of a pipeline its scripts are registered on:
one round trip more per ranker batch. The pipelines now send the EVALSHAs at once and load a
script only when Redis answers NOSCRIPT (a restarted, failed-over or flushed server), sending
exactly the commands that did not run again.

The tests flush scripts, so they run on a private Redis (tests/support/private_redis.py), never
on the machine's shared one, where other checkouts' tests run and count commands too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from podium.settings import PlatformSettings
from services.ranker.index import PlannedWrite, write_batch
from shared.leaderboard_store import LeaderboardStore, StandingWrite
from shared.redis_client import create_redis, execute_scripted, queue_script
from tests.conftest import SettingsFactory
from tests.support.private_redis import private_redis
from tests.support.query_seed import make_rows, seed_competition, seed_standings

T0 = datetime(2026, 12, 4, 12, tzinfo=UTC)
_INCR = "return redis.call('INCR', KEYS[1])"


@pytest.fixture
async def redis_client(
    settings_factory: SettingsFactory, artifacts_dir: Path, tmp_path: Path
) -> AsyncIterator[Redis]:
    """A client of a private Redis (this module flushes scripts)."""
    with private_redis(tmp_path, artifacts_dir / "redis-scripts.log") as server:
        client = create_redis(settings_factory(redis_url=server.url))
        yield client
        await client.aclose()


async def _script_exists_calls(redis: Redis) -> int:
    """SCRIPT EXISTS calls so far (Redis 7 counts subcommands apart; 6.2 counts SCRIPT)."""
    stats = await redis.info("commandstats")
    entry = stats.get("cmdstat_script|exists") or stats.get("cmdstat_script") or {}
    return int(entry.get("calls", 0))


async def test_a_flushed_script_is_loaded_and_only_the_commands_that_did_not_run_go_again(
    settings: PlatformSettings, redis_client: Redis
) -> None:
    key = f"{settings.redis_key_prefix}counter"
    script = redis_client.register_script(_INCR)
    await redis_client.script_flush()
    async with redis_client.pipeline(transaction=False) as pipe:
        queue_script(pipe, script, [key], [])  # NOSCRIPT: did not run
        pipe.incr(key)  # ran: 1
        queue_script(pipe, script, [key], [])  # NOSCRIPT: did not run
        replies = await execute_scripted(redis_client, pipe, [script])
    # the two script calls ran after the plain INCR, once each, in their queued order
    assert replies == [2, 1, 3]
    assert int(await redis_client.get(key)) == 3
    assert (await redis_client.script_exists(script.sha)) == [True]


async def test_an_error_reply_other_than_noscript_is_raised(
    settings: PlatformSettings, redis_client: Redis
) -> None:
    key = f"{settings.redis_key_prefix}failing"
    failing = redis_client.register_script("return redis.error_reply('boom')")
    await redis_client.script_load(failing.script)
    async with redis_client.pipeline(transaction=False) as pipe:
        queue_script(pipe, failing, [key], [])
        with pytest.raises(ResponseError, match="boom"):
            await execute_scripted(redis_client, pipe, [failing])


async def test_a_ranker_batch_sends_no_script_exists_and_survives_a_script_flush(
    settings: PlatformSettings, redis_client: Redis, pool: asyncpg.Pool
) -> None:
    store = LeaderboardStore(redis_client, settings.redis_key_prefix)
    ids = [f"sc-{index}" for index in range(3)]
    competitions = {cid: await seed_competition(pool, id=cid) for cid in ids}
    for cid in ids:
        await seed_standings(pool, store, competitions[cid], make_rows("alltime", 3))

    async def batch(version: int, score: float) -> None:
        planned = [
            PlannedWrite(competitions[cid], {"alltime": [StandingWrite("top", score, T0)]})
            for cid in ids
        ]
        indexed = await write_batch(store, planned, dict.fromkeys(ids, version), 3, 1_000)
        assert [item.stale for item in indexed] == [None] * len(ids)
        for item in indexed:
            assert item.results is not None
            assert item.results["alltime"].top[0] == ("top", score)

    await redis_client.script_flush()  # as after a Redis restart: the first batch loads it
    await batch(1, 100.0)
    counted = await _script_exists_calls(redis_client)
    await redis_client.script_exists("0" * 40)
    before = await _script_exists_calls(redis_client)
    assert before == counted + 1, "this Redis does not count SCRIPT EXISTS"
    await batch(2, 200.0)
    assert await _script_exists_calls(redis_client) == before, "a batch asked SCRIPT EXISTS"
    assert await store.built_markers(ids) == ["2"] * len(ids)


async def test_a_transactional_pipeline_is_refused(
    settings: PlatformSettings, redis_client: Redis
) -> None:
    script = redis_client.register_script(_INCR)
    async with redis_client.pipeline(transaction=True) as pipe:
        queue_script(pipe, script, [f"{settings.redis_key_prefix}never"], [])
        with pytest.raises(ValueError, match="without MULTI"):
            await execute_scripted(redis_client, pipe, [script])
