"""Scale evidence (issue #18): one leaderboard of N members (default 1,000,000).

Real PostgreSQL and Redis (the configured ones), a schema and key prefix of the run's own,
deleted after. N standings are copied into PostgreSQL, then the board is rebuilt into Redis
the way the ranker heals a lost board (:meth:`LeaderboardStore.rebuild`): its wall time, this
process's CPU and Redis's own CPU for it, and Redis memory per member (``used_memory``
before and after, and ``MEMORY USAGE`` of each of the window's keys). Then the query
service's reads at that size (:class:`services.query.leaderboards.LeaderboardReader`, no HTTP:
the Redis and Python cost of a read, which is what grows with N): the first top page, a page
at a random ``from_rank``, one user's rank with percentile, and a neighbourhood of radius 5,
each timed one at a time (p50/p99), for the default ``unique`` style and for ``dense``.
With ``--http-seconds``, the same reads over HTTP: a private broker and two ``podium serve
query`` processes on the board (micro-cache on, and TTL 0 so every read reaches Redis), each
route driven by wrk for that long (random members for user and around) — the service's
whole path at that size, parsing, cache and JSON included.

    .venv/bin/python -m bench.scale_micro --members 1000000 --distinct 100000 --http-seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg

from bench import scripts
from bench.measure import timed_calls, wrk_figure
from bench.micro_stores import micro_stores
from bench.rank_styles_micro import STYLES_COMPETITION_ID, style_competition
from bench.stack import BenchStack, bench_settings
from services.query.circuit_breaker import CircuitBreaker
from services.query.leaderboards import LeaderboardReader
from services.ranker.settings import RankerSettings
from services.settings import AllServicesSettings
from shared.redis_client import RedisClient
from shared.redis_keys import distinct_key, members_key, ranking_key
from shared.schemas.competition import RankStyle, SortOrder

_CID = STYLES_COMPETITION_ID  # seeded here, read through rank_styles_micro's competitions
_WINDOW = "alltime"
_COPY_CHUNK = 100_000
_HTTP_CONNECTIONS = 16
_HTTP_READS = {  # wrk's Lua: %07d is a random member's index
    "top_page": f"/api/v1/leaderboards/{_CID}/top?limit=10",
    "user": f"/api/v1/leaderboards/{_CID}/users/u%07d",
    "around": f"/api/v1/leaderboards/{_CID}/around/u%07d?radius=5",
}


async def _seed(pool: asyncpg.Pool, schema: str, members: int, distinct: int) -> None:
    """The competition, its standings version and ``members`` standings (COPY, in chunks)."""
    await pool.execute(
        "INSERT INTO competitions (id, name, sort_order, operator, reset)"
        " VALUES ($1, $1, 'desc', 'best', 'none')",
        _CID,
    )
    await pool.execute(
        "INSERT INTO standings_versions (competition_id, version) VALUES ($1, 1)", _CID
    )
    rng = random.Random(18)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with pool.acquire() as connection:
        for start in range(0, members, _COPY_CHUNK):
            rows = [
                (
                    _CID,
                    _WINDOW,
                    f"u{index:07d}",
                    float(rng.randrange(distinct)),
                    t0 + timedelta(seconds=index),
                    t0 + timedelta(seconds=index),
                )
                for index in range(start, min(members, start + _COPY_CHUNK))
            ]
            await connection.copy_records_to_table(
                "standings",
                records=rows,
                columns=[
                    "competition_id",
                    "window_label",
                    "user_id",
                    "score",
                    "reached_at",
                    "last_event_ts",
                ],
                schema_name=schema,
            )


async def _redis_figures(redis: RedisClient) -> tuple[int, float]:
    """Redis's ``used_memory`` (bytes) and its CPU seconds so far (user + system)."""
    memory = await redis.info("memory")
    cpu = await redis.info("cpu")
    return int(memory["used_memory"]), float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def _script_for(path: str, members: int) -> Callable[[int], str]:
    """wrk's Lua for one read: a random member each request where the path takes one."""
    script = scripts.random_member(path, members) if "%" in path else scripts.plain_get()
    return lambda _repeat: script


async def _http_reads(
    settings: RankerSettings, members: int, seconds: float, work_dir: Path
) -> dict[str, Any]:
    """Each read of :data:`_HTTP_READS` through ``podium serve query`` processes on the seeded
    board (same schema and key prefix), with the micro-cache and with TTL 0."""
    run_id = settings.db_schema.removeprefix("bench_")
    base = AllServicesSettings(
        env="test",
        log_json=False,
        jwt_secrets=settings.jwt_secrets,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
    )
    stack = BenchStack(bench_settings(base, run_id), work_dir, run_id)
    if (stack.settings.db_schema, stack.settings.redis_key_prefix) != (
        settings.db_schema,
        settings.redis_key_prefix,
    ):
        raise RuntimeError("the query processes would not read the seeded board")
    try:
        await stack.start()
        figures: dict[str, Any] = {}
        for name, ttl_overrides in (("hot_cache", {}), ("ttl_0", {"query_cache_ttl_ms": 0})):
            member = await stack.serve(f"query-{name}", "query", **ttl_overrides)
            figures[name] = {
                read: wrk_figure(
                    member.url if "%" in path else member.url + path,
                    _script_for(path, members),
                    work_dir,
                    f"scale-{name}-{read}",
                    connections=_HTTP_CONNECTIONS,
                    duration_s=seconds,
                    repeats=1,
                    warmup_s=min(1.0, seconds),
                )
                for read, path in _HTTP_READS.items()
            }
            stack.stop(f"query-{name}")
        return figures
    finally:
        for name in list(stack.services):
            stack.stop(name)
        if stack.broker is not None:
            stack.broker.stop()  # the data goes with the run's (see run)


async def run(
    members: int, distinct: int, samples: int, http_seconds: float = 0.0
) -> dict[str, Any]:
    """Seed, rebuild, measure memory and reads; the figures as a dict."""
    async with micro_stores() as stores:
        settings, pool, redis, store = stores.settings, stores.pool, stores.redis, stores.store
        prefix = settings.redis_key_prefix
        seeded_at = time.perf_counter()
        await _seed(pool, settings.db_schema, members, distinct)
        seed_s = time.perf_counter() - seeded_at
        memory_before, redis_cpu_before = await _redis_figures(redis)
        cpu_before, started = time.process_time(), time.perf_counter()
        loaded = await store.rebuild(pool, _CID, SortOrder.DESC)
        rebuild_s = time.perf_counter() - started
        rebuild_cpu_s = time.process_time() - cpu_before
        memory_after, redis_cpu_after = await _redis_figures(redis)
        assert loaded == members, (loaded, members)
        keys = {
            "ranking (sorted set)": ranking_key(prefix, _CID, _WINDOW),
            "members (hash)": members_key(prefix, _CID, _WINDOW),
            "distinct scores (sorted set)": distinct_key(prefix, _CID, _WINDOW),
        }
        usage = {
            name: int(await redis.memory_usage(key, samples=0) or 0) for name, key in keys.items()
        }
        reader = LeaderboardReader(
            store,
            cast(asyncpg.Pool, None),  # never rebuilds: the window is built
            CircuitBreaker("bench", failure_threshold=5, reset_timeout_s=1.0),
            timeout_s=5.0,
        )
        rng = random.Random(19)
        reads: dict[str, Any] = {}
        for style in (RankStyle.UNIQUE, RankStyle.DENSE):
            competition = style_competition(style)

            async def top(competition: Any = competition) -> None:
                await reader.page(competition, _WINDOW, None, 10)

            async def from_rank(competition: Any = competition) -> None:
                await reader.page(
                    competition, _WINDOW, None, 10, from_rank=rng.randrange(1, members)
                )

            async def user(competition: Any = competition) -> None:
                await reader.ranks(competition, _WINDOW, [f"u{rng.randrange(members):07d}"])

            async def around(competition: Any = competition) -> None:
                await reader.around(competition, _WINDOW, f"u{rng.randrange(members):07d}", 5)

            reads[style.value] = {
                "top_page": await timed_calls(samples, top),
                "from_rank_page": await timed_calls(samples, from_rank),
                "user": await timed_calls(samples, user),
                "around": await timed_calls(samples, around),
            }
        http = (
            await _http_reads(settings, members, http_seconds, Path(".podium/bench/scale"))
            if http_seconds > 0
            else None
        )
        return {
            "members": members,
            "distinct_scores": distinct,
            "seed_postgres_s": round(seed_s, 2),
            "rebuild": {
                "wall_s": round(rebuild_s, 2),
                "ranker_process_cpu_s": round(rebuild_cpu_s, 2),
                "redis_cpu_s": round(redis_cpu_after - redis_cpu_before, 2),
                "members_per_s": round(members / rebuild_s),
            },
            "redis_memory": {
                "used_memory_delta_bytes": memory_after - memory_before,
                "bytes_per_member": round((memory_after - memory_before) / members, 1),
                "memory_usage_bytes": usage,
            },
            "reads": reads,
            "http_reads": http,
        }


def main() -> None:
    """Run once and print (and optionally write) the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=100_000, help="distinct scores (ties)")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument(
        "--http-seconds",
        type=float,
        default=0.0,
        help="also drive each read over HTTP (two query processes, wrk) for this long",
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = asyncio.run(run(args.members, args.distinct, args.samples, args.http_seconds))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as output:
            output.write(text + "\n")


if __name__ == "__main__":
    main()
