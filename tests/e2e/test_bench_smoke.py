"""`podium bench --smoke`: the benchmark harness end to end at tiny sizes (never timings)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis

from bench.config import SMOKE
from bench.report import RATIO_KEYS, TARGETS
from podium.settings import PlatformSettings
from tests.support.servers import podium_command, process_environment

HTTP_FIGURE_KEYS = {"req_s", "p50_ms", "p99_ms", "non_2xx", "runs"}
LATENCY_KEYS = {"p50_ms", "p99_ms", "samples"}
FRESHNESS_KEYS = LATENCY_KEYS | {
    "ws_p50_ms",
    "ws_p99_ms",
    "ws_samples",
    "offered_eps",
    "achieved_eps",
    "probes",
    "probes_unseen",
    "probe_side",
    "stages",
}


def _check_http(figure: dict[str, Any]) -> None:
    assert set(figure) >= HTTP_FIGURE_KEYS
    assert figure["req_s"] > 0
    assert figure["runs"]


def test_bench_smoke_writes_every_figure_and_ratio(
    settings: PlatformSettings, tmp_path: Path
) -> None:
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [
            *podium_command("bench", "--smoke"),
            "--output",
            str(output),
            "--work-dir",
            str(tmp_path / "work"),
        ],
        env=process_environment(settings),
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = orjson.loads(output.read_bytes())
    assert "| measurement |" in completed.stdout

    machine = results["machine"]
    assert {"nproc", "cpu_model", "memory_gib", "python", "packages", "date"} <= set(machine)
    figures = results["figures"]
    assert figures["redis"]["zadd_ops_s"] > 0
    assert figures["redis"]["zrevrange_ops_s"] > 0
    for figure in (figures["naive"]["post"], figures["naive"]["get"]):
        _check_http(figure)
    _check_http(figures["ingest"]["single"])
    _check_http(figures["ingest"]["batch"])
    assert figures["ingest"]["batch"]["events_s"] > 0
    # authenticated, validated and acknowledged: the ingest phases must not be all errors
    assert figures["ingest"]["single"]["non_2xx"] == 0
    assert figures["ingest"]["batch"]["non_2xx"] == 0
    ranker = figures["ranker"]
    assert ranker["finished"] is True
    assert ranker["postgres_events"] == ranker["events"] == ranker["committed"]
    assert ranker["events_s"] > 0
    _check_freshness(figures["freshness"])
    for temperature in ("hot", "cold"):
        for read in ("top10", "around"):
            _check_http(figures["query"][temperature][read])
            assert figures["query"][temperature][read]["non_2xx"] == 0
    levels = figures["notifier"]["levels"]
    assert set(levels) == {"5", "10"}
    for level, figure in levels.items():
        assert figure["clients"] == int(level)
        assert figure["missed"] == 0
        assert LATENCY_KEYS | {"bytes_per_connection"} <= set(figure)
    assert set(results["ratios"]) == set(RATIO_KEYS)
    assert all(value > 0 for value in results["ratios"].values())
    _check_targets(results["targets"])

    # the run cleaned up after itself: its schema and its Redis keys are gone
    run_id = results["run_id"]
    prefix = f"bench:{run_id}:"
    client = redis.Redis.from_url(settings.redis_url.get_secret_value())
    try:
        assert not list(client.scan_iter(match=f"{prefix}*", count=1000))
    finally:
        client.close()
    assert not _schema_exists(settings, f"bench_{run_id}")


def _check_freshness(freshness: dict[str, Any]) -> None:
    """The idle phase and every offered level, each with both readers' latencies, and the
    stage histograms scraped around it."""
    levels = {f"{level:.0f}" for level in SMOKE.freshness_levels_eps}
    assert set(freshness) == {"idle", *levels}
    for name, phase in freshness.items():
        assert set(phase) >= FRESHNESS_KEYS, name
        assert phase["samples"] == phase["ws_samples"] == phase["probes"] > 0
        assert phase["probes_refused"] == phase["probes_unseen"] == phase["ws_unseen"] == 0
        assert phase["achieved_eps"] > 0
        stages = phase["stages"]
        assert "query podium_query_change_lag_seconds" in stages
        assert any(key.startswith("ingest podium_ingest_produce") for key in stages)
        assert phase["probe_side"]["cpu_us_per_probe"] > 0
    for level in levels:
        load = freshness[level]["load"]
        assert load["executor"] == "constant-arrival-rate"
        assert load["events_accepted"] > 0
        assert load["requests_refused"] == 0


def _check_targets(rows: list[dict[str, Any]]) -> None:
    """Every target is in the table; those the smoke sizes measure have a value."""
    assert [row["target"] for row in rows] == [target.name for target in TARGETS]
    for row in rows:
        assert (row["value"] is None) == (row["met"] is None), row
        assert row["met"] is None or isinstance(row["met"], bool)
    measured = {row["target"] for row in rows if row["value"] is not None}
    assert {
        "freshness p99 idle, 202 → query API",
        "freshness p99 idle, 202 → WebSocket frame",
        "ingest single POST req/s vs naive POST",
        "ingest batch events/s (one worker)",
        "query top-10 hot req/s vs naive GET",
        "query top-10 hot p99 vs naive GET p99",
    } <= measured


def _schema_exists(settings: PlatformSettings, schema: str) -> bool:
    import asyncio

    async def check() -> bool:
        connection = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            found: bool = await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
            )
            return found
        finally:
            await connection.close()

    return asyncio.run(check())
