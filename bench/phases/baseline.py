"""Baselines measured in the same run: the Redis ceiling and the naive app."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench import scripts
from bench.config import BenchConfig
from bench.measure import WrkLoad, wrk_figure
from bench.stack import BenchStack
from bench.tools import run_redis_benchmark
from shared.redis_client import RedisClient


def redis_ceiling(stack: BenchStack, config: BenchConfig) -> dict[str, Any]:
    """Pipelined ZADD (random scores and members) and ZREVRANGE 0 9 on Podium's Redis."""
    url = urlparse(stack.settings.redis_url.get_secret_value())
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    db = int((url.path or "/0").lstrip("/") or 0)
    key = f"{stack.settings.redis_key_prefix}ceiling"
    zadd = run_redis_benchmark(
        host,
        port,
        ["ZADD", key, "__rand_int__", "member:__rand_int__"],
        requests=config.redis_requests,
        pipeline=config.redis_pipeline,
        db=db,
    )
    zrevrange = run_redis_benchmark(
        host,
        port,
        ["ZREVRANGE", key, "0", "9", "WITHSCORES"],
        requests=config.redis_requests,
        pipeline=config.redis_pipeline,
        db=db,
    )
    return {
        "zadd_ops_s": round(zadd, 1),
        "zrevrange_ops_s": round(zrevrange, 1),
        "pipeline": config.redis_pipeline,
    }


async def seed_naive(redis: RedisClient, key: str, members: int) -> None:
    """Give the naive sorted set as many members as a benchmarked leaderboard."""
    mapping = {f"u{index}": float(index) for index in range(members)}
    await redis.zadd(key, mapping)


def naive_post_load(base_url: str, config: BenchConfig, pid: int | None = None) -> WrkLoad:
    """The naive app's POST (bare ZADD) at the run's connections (with its ``pid``: its CPU
    per request too, to set against ingest's); measured interleaved with ingest's single
    POST (:func:`bench.measure.wrk_figures_interleaved`)."""
    return WrkLoad(
        f"{base_url}/scores",
        lambda _repeat: scripts.naive_post(config.users),
        "naive-post",
        config.http_connections,
        pid=pid,
    )


def naive_get(base_url: str, work_dir: Path, config: BenchConfig) -> dict[str, Any]:
    """The naive app's GET (ZREVRANGE 0 9) at the run's connections: the query API's
    baseline."""
    return wrk_figure(
        f"{base_url}/top",
        lambda _repeat: scripts.plain_get(),
        work_dir,
        "naive-get",
        connections=config.http_connections,
        duration_s=config.http_duration_s,
        repeats=config.http_repeats,
        warmup_s=config.warmup_s,
    )
