"""Micro-benchmark of the reconciler (issue #17): one pass over N competitions, then one that
heals K stale boards.

Real PostgreSQL and Redis (the configured ones) and a private tansu broker (the healed boards
are really announced). ``standings_versions`` gets one row per competition and Redis the
matching built markers, so the first pass finds nothing: it is the cost every ranker pays
every ``PODIUM_RECONCILE_INTERVAL_S`` and after a new Redis identity (one indexed SELECT, one
pipelined GET per competition). Then K markers are set one version back (what an older
snapshot leaves) over boards of S standings each and a pass heals them: the part of the heal
bound that grows with the damage (`bench/phases/reconcile.py`, which ``podium bench`` runs on
the ranker phase's schema too). Each run uses a fresh schema and key prefix and cleans up.

    .venv/bin/python -m bench.reconcile_micro --competitions 10000 --stale 5 --standings 400
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from bench.phases.reconcile import time_passes
from bench.ranker_micro import create_competitions, make_settings
from devstack.broker import start_broker
from devstack.cleanup import discard_run_data
from devstack.processes import free_port
from services.ranker.settings import RankerSettings
from shared.db import create_pool
from shared.kafka import ensure_topics
from shared.migrations import migrate
from shared.redis_client import RedisClient, create_redis
from shared.redis_keys import built_key

_CHUNK = 5000


async def _seed(
    settings: RankerSettings,
    pool: asyncpg.Pool,
    redis: RedisClient,
    competitions: int,
    stale: int,
    standings: int,
) -> None:
    """Competitions, their versions and fresh markers; standings for the boards that
    :func:`~bench.phases.reconcile.time_passes` makes stale (the first ids in text order)."""
    await create_competitions(pool, competitions)
    to_stale = sorted(f"c{index}" for index in range(competitions))[:stale]
    versions = [(f"c{index}", index % 97 + 1) for index in range(competitions)]
    await pool.executemany(
        "INSERT INTO standings_versions (competition_id, version) VALUES ($1, $2)", versions
    )
    now = datetime.now(UTC)
    await pool.executemany(
        "INSERT INTO standings (competition_id, window_label, user_id, score, reached_at,"
        " last_event_ts) VALUES ($1, 'alltime', $2, $3, $4, $4)",
        [
            (cid, f"u{user}", float(user % 50), now - timedelta(seconds=user))
            for cid in to_stale
            for user in range(standings)
        ],
    )
    for start in range(0, competitions, _CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for cid, version in versions[start : start + _CHUNK]:
                pipe.set(built_key(settings.redis_key_prefix, cid), str(version))
            await pipe.execute()


async def run_once(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh schema, seeded, then :func:`bench.phases.reconcile.time_passes`."""
    settings = make_settings(bootstrap, 1)
    await migrate(settings)
    await ensure_topics(settings)
    pool = await create_pool(settings)
    redis = create_redis(settings)
    try:
        await _seed(settings, pool, redis, args.competitions, args.stale, args.standings)
    finally:
        await redis.aclose()
        await pool.close()
    try:
        return await time_passes(settings, args.stale)
    finally:
        await discard_run_data(settings)


async def measure(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """Median figures over ``args.repeats`` runs."""
    runs = [await run_once(bootstrap, args) for _ in range(args.repeats)]
    clean_ms = statistics.median(run["clean_pass_ms"] for run in runs)
    healing_ms = statistics.median(run["healing_pass_ms"] for run in runs)
    return {
        "competitions": args.competitions,
        "clean_pass_ms": clean_ms,
        "stale_boards": args.stale,
        "standings_per_board": args.standings,
        "healing_pass_ms": healing_ms,
        "ms_per_healed_board": round((healing_ms - clean_ms) / max(args.stale, 1), 2),
    }


async def main(args: argparse.Namespace) -> None:
    """Start a private broker, measure, print."""
    port = free_port()
    broker = start_broker("127.0.0.1", port)
    try:
        started = time.monotonic()
        result = await measure(f"127.0.0.1:{port}", args)
        print(
            f"reconcile pass over {result['competitions']:,} competitions:"
            f" {result['clean_pass_ms']} ms with nothing stale;"
            f" {result['healing_pass_ms']} ms healing {result['stale_boards']} boards of"
            f" {result['standings_per_board']} standings"
            f" ({result['ms_per_healed_board']} ms per healed board);"
            f" medians of {args.repeats} runs ({time.monotonic() - started:.0f} s)"
        )
    finally:
        broker.stop()


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--competitions", type=int, default=10_000)
    parser.add_argument("--stale", type=int, default=5)
    parser.add_argument("--standings", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
