"""The Redis key layout and the write script against the machine's Redis (no broker, no
PostgreSQL): the script finds the user id where the member encoding puts it, and SCAN patterns
never match another competition's (or another prefix's) keys, whatever glob characters the
ids hold."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from shared.leaderboard import USER_ID_START, encode_member
from shared.leaderboard_store import _WRITE_SCRIPT, LeaderboardStore, StandingWrite, VersionStep
from shared.redis_keys import (
    built_key,
    competition_keys,
    competition_windows,
    members_key,
    prefix_pattern,
    ranking_key,
    rebuild_key,
    version_key,
)
from shared.schemas.competition import SortOrder

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
GLOB_IDS = ["a*", "a?", "a[b]", "a\\b", "ab", "a]b", "a"]


@pytest.fixture
async def redis(redis_url: str, unique_id: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    # not via a pattern: the patterns are what is under test
    async for key in client.scan_iter(match=f"t:{unique_id}*", count=1000):
        await client.delete(key)
    await client.aclose()


def test_the_script_offset_is_derived_from_the_member_encoding() -> None:
    member = encode_member("team:red:7", T0)
    assert member[USER_ID_START:] == "team:red:7"
    assert f"local user_offset = {USER_ID_START + 1}\n" in _WRITE_SCRIPT  # Lua is 1-based


async def test_the_write_script_reads_back_the_user_id_of_an_encoded_member(
    redis: Redis, unique_id: str
) -> None:
    prefix, cid = f"t:{unique_id}:", "lua"
    store = LeaderboardStore(redis, prefix)
    await redis.set(built_key(prefix, cid), "1")
    writes = {"alltime": [StandingWrite("team:red:7", 5.0, T0), StandingWrite("u2", 4.0, T0)]}
    await store.write(cid, SortOrder.DESC, writes, VersionStep(1, 2))
    members = await redis.hgetall(members_key(prefix, cid, "alltime"))
    assert members == {
        b"team:red:7": encode_member("team:red:7", T0).encode(),
        b"u2": encode_member("u2", T0).encode(),
    }
    # the top compares users by the same offset: another user at the same score and time is
    # a changed top, the same state written again is not
    swap = {"alltime": [StandingWrite("team:red:7", None, None), StandingWrite("x", 5.0, T0)]}
    for version, (batch, changed) in enumerate(((swap, True), (swap, False)), start=2):
        async with redis.pipeline(transaction=False) as pipe:
            store.queue_write(
                pipe, cid, SortOrder.DESC, batch, 1, VersionStep(version, version + 1)
            )
            (reply,) = await pipe.execute()
        result = store.parse_write_reply(batch, SortOrder.DESC, reply, version)
        assert isinstance(result, dict)
        assert result["alltime"].top == [("x", 5.0)]
        assert result["alltime"].top_changed is changed


async def test_scans_match_only_their_own_competition_and_prefix(
    redis: Redis, unique_id: str
) -> None:
    prefixes = [f"t:{unique_id}[*]:", f"t:{unique_id}x:"]  # the first one globs the second
    owned: dict[tuple[str, str], set[bytes]] = {}
    for prefix in prefixes:
        for index, cid in enumerate(GLOB_IDS):
            zkey = ranking_key(prefix, cid, f"w{index}")
            keys = [
                zkey,
                members_key(prefix, cid, f"w{index}"),
                built_key(prefix, cid),
                version_key(prefix, cid),
                rebuild_key(zkey, "1"),
            ]
            for key in keys:
                await redis.set(key, "1")
            owned[prefix, cid] = {key.encode() for key in keys}
    for prefix in prefixes:
        for index, cid in enumerate(GLOB_IDS):
            assert await competition_windows(redis, prefix, cid) == {f"w{index}"}, cid
            assert set(await competition_keys(redis, prefix, cid)) == owned[prefix, cid], cid
        under_prefix = {key async for key in redis.scan_iter(match=prefix_pattern(prefix))}
        assert under_prefix == set().union(*(owned[prefix, cid] for cid in GLOB_IDS))
    store = LeaderboardStore(redis, prefixes[0])
    await store.drop("a*")
    assert await competition_keys(redis, prefixes[0], "a*") == []
    for cid in GLOB_IDS[1:]:
        assert set(await competition_keys(redis, prefixes[0], cid)) == owned[prefixes[0], cid]
