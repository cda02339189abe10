"""Micro-benchmark of rank styles (issue #15): read latency per style, and the write cost of
keeping the distinct-scores set.

One window of N members in the configured Redis (its own key prefix, deleted after), built
through the ranker's write script. Then, for each style, the query service's own reads
(:class:`services.query.leaderboards.LeaderboardReader`, no HTTP): a page at a random
``from_rank``, a page after a random cursor anchor, a user's rank (with percentile) and a
neighbourhood of radius 5, each timed one at a time (p50/p99 over the samples). Finally the
write script's cost per standing write, this version (which also keeps the distinct-scores
set) against the script before issue #15 (taken from git), on the same window.

    .venv/bin/python -m bench.rank_styles_micro --members 100000 --distinct 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from string import Template
from typing import Any, cast

import asyncpg

from bench.measure import timed_calls
from services.query.circuit_breaker import CircuitBreaker
from services.query.leaderboards import Anchor, LeaderboardReader
from shared.leaderboard import USER_ID_START, encode_member
from shared.leaderboard_store import LeaderboardStore, StandingWrite, VersionStep
from shared.redis_client import create_redis
from shared.redis_keys import built_key, members_key, prefix_pattern, ranking_key
from shared.schemas.competition import Competition, RankStyle, SortOrder
from shared.settings import CommonSettings

STYLES_COMPETITION_ID = "bench-styles"
_CID = STYLES_COMPETITION_ID
_WINDOW = "alltime"
_CHUNK = 2000
_BEFORE_ISSUE_15 = "5095e4c"  # the last commit whose write script keeps no distinct scores


def style_competition(style: RankStyle) -> Competition:
    now = datetime.now(UTC)
    return Competition.model_validate(
        {
            "id": _CID,
            "name": _CID,
            "sort_order": "desc",
            "operator": "best",
            "reset": "none",
            "timezone": "UTC",
            "starts_at": None,
            "ends_at": None,
            "max_value": None,
            "visibility": "public",
            "rank_style": style.value,
            "created_at": now,
            "updated_at": now,
        }
    )


def _old_write_script() -> str:
    """The write script as it was before issue #15 (no distinct-scores set)."""
    source = subprocess.run(
        ["git", "show", f"{_BEFORE_ISSUE_15}:shared/leaderboard_store.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    head = '_WRITE_SCRIPT_TEMPLATE = Template("""'
    template = source[source.index(head) + len(head) :]
    template = template[: template.index('""")')].replace("\\\\", "\\")
    return Template(template).substitute(user_offset=USER_ID_START + 1)


async def run(members: int, distinct: int, samples: int, write_batches: int) -> dict[str, Any]:
    """Build the window, time the reads per style and the writes; the results as a dict."""
    settings = CommonSettings(
        env="test",
        jwt_secrets=["bench-secret-0123456789-0123456789-abcdef"],
        redis_key_prefix=f"bench:{uuid.uuid4().hex[:8]}:",
    )
    redis = create_redis(settings)
    prefix = settings.redis_key_prefix
    store = LeaderboardStore(redis, prefix)
    rng = random.Random(15)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    version = 0
    try:
        await redis.set(built_key(prefix, _CID), "0")
        users = [f"u{index:07d}" for index in range(members)]
        for start in range(0, members, _CHUNK):
            writes = [
                StandingWrite(user, float(rng.randrange(distinct)), t0 + timedelta(seconds=i))
                for i, user in enumerate(users[start : start + _CHUNK], start=start)
            ]
            await store.write(
                _CID,
                SortOrder.DESC,
                {_WINDOW: writes},
                VersionStep(version, version + 1),
            )
            version += 1
        reader = LeaderboardReader(
            store,
            cast(asyncpg.Pool, None),  # never rebuilds: the window is built
            CircuitBreaker("bench", failure_threshold=5, reset_timeout_s=1.0),
            timeout_s=5.0,
        )
        zkey = ranking_key(prefix, _CID, _WINDOW)
        results: dict[str, Any] = {"members": members, "distinct_scores": distinct, "reads": {}}
        for style in RankStyle:
            competition = style_competition(style)

            async def from_rank(competition: Competition = competition) -> None:
                await reader.page(
                    competition, _WINDOW, None, 10, from_rank=rng.randrange(1, members)
                )

            async def after_cursor(competition: Competition = competition) -> None:
                position = rng.randrange(members)
                rows = await redis.zrange(zkey, position, position, withscores=True)
                member, score = cast(tuple[bytes, float], rows[0])
                anchor = Anchor(score=repr(score), member=member.decode())
                await reader.page(competition, _WINDOW, anchor, 10)

            async def user(competition: Competition = competition) -> None:
                await reader.ranks(competition, _WINDOW, [rng.choice(users)])

            async def around(competition: Competition = competition) -> None:
                await reader.around(competition, _WINDOW, rng.choice(users), 5)

            results["reads"][style.value] = {
                "from_rank_page": await timed_calls(samples, from_rank),
                "cursor_page": await timed_calls(samples, after_cursor),
                "user": await timed_calls(samples, user),
                "around": await timed_calls(samples, around),
            }
        results["writes"] = await _time_writes(store, rng, users, distinct, write_batches)
        return results
    finally:
        keys = [key async for key in redis.scan_iter(match=prefix_pattern(prefix), count=1000)]
        for start in range(0, len(keys), 1000):
            await redis.delete(*keys[start : start + 1000])
        await redis.aclose()


async def _time_writes(
    store: LeaderboardStore, rng: random.Random, users: list[str], distinct: int, batches: int
) -> dict[str, float]:
    """Microseconds per standing write (batches of 500 score changes), new vs old script,
    interleaved so the machine's load hits both alike."""
    redis, prefix = store.redis, store.prefix
    old = redis.register_script(_old_write_script())
    marker = built_key(prefix, _CID)
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    per_write: dict[str, list[float]] = {"new": [], "old": []}
    for batch in range(batches * 2):
        kind = "new" if batch % 2 == 0 else "old"
        writes = [
            StandingWrite(user, float(rng.randrange(distinct)), moment + timedelta(seconds=i))
            for i, user in enumerate(rng.sample(users, 500))
        ]
        held = int(await redis.get(marker) or 0)
        keys, arguments = store.write_command(
            _CID, SortOrder.DESC, {_WINDOW: writes}, 0, VersionStep(held, held + 1)
        )
        if kind == "old":  # the old layout: sorted set and members hash only
            keys = [
                marker,
                ranking_key(prefix, _CID, _WINDOW),
                members_key(prefix, _CID, _WINDOW),
            ]
            lines = (
                f"s {encode_member(w.user_id, moment + timedelta(seconds=i))}"
                f" {-cast(float, w.value)!r}\n"
                for i, w in enumerate(writes)
            )
            arguments = [*arguments[:3], "".join(lines)]
        started = time.perf_counter()
        await (store._write if kind == "new" else old)(keys=keys, args=arguments)
        per_write[kind].append((time.perf_counter() - started) / len(writes) * 1e6)
    return {
        "new_us_per_write": round(statistics.median(per_write["new"]), 2),
        "old_us_per_write": round(statistics.median(per_write["old"]), 2),
    }


def main() -> None:
    """Run and print the results as a table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=1000, help="distinct scores (ties)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--write-batches", type=int, default=20)
    parser.add_argument("--json", help="also write the results to this file")
    arguments = parser.parse_args()
    results = asyncio.run(
        run(arguments.members, arguments.distinct, arguments.samples, arguments.write_batches)
    )
    print(f"{results['members']} members, {results['distinct_scores']} distinct scores")
    print(f"{'style':<10}{'read':<16}{'p50 ms':>10}{'p99 ms':>10}")
    for style, reads in results["reads"].items():
        for read, figures in reads.items():
            print(f"{style:<10}{read:<16}{figures['p50_ms']:>10}{figures['p99_ms']:>10}")
    writes = results["writes"]
    print(
        f"write script per standing write: {writes['new_us_per_write']} us"
        f" (before #15: {writes['old_us_per_write']} us)"
    )
    if arguments.json:
        with open(arguments.json, "w", encoding="utf-8") as output:
            json.dump(results, output, indent=2)


if __name__ == "__main__":
    main()
