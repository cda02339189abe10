"""``podium bench``: bring up what the run needs, run every phase, report, clean up."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from bench.config import BenchConfig
from bench.machine import machine_info
from bench.measure import wrk_figures_interleaved
from bench.phases.baseline import naive_get, naive_post_load, redis_ceiling, seed_naive
from bench.phases.freshness import FreshnessTarget, run_freshness
from bench.phases.ingest import ingest_batch, ingest_single_load
from bench.phases.notifier import NotifierTarget, run_notifier_phase
from bench.phases.query import query_cold, query_hot
from bench.phases.ranker import run_ranker_phase
from bench.phases.reconcile import time_passes
from bench.profile import profiled, summarize
from bench.report import ratios, table, targets, write_results
from bench.stack import BenchStack, bench_settings, raise_open_files_limit
from bench.workload import competition_body, competition_id, event_target
from services.settings import AllServicesSettings
from shared.auth import issue_token
from shared.competitions import create_competition
from shared.db import create_pool
from shared.redis_client import create_redis
from shared.schemas.competition import CompetitionCreate

logger = logging.getLogger(__name__)
TOKEN_TTL_S = 3600
NOTIFIER_COMPETITION = 0
ALL_PHASES = frozenset({"ingest", "ranker", "freshness", "query", "notifier"})


class PhaseClock:
    """Seconds each phase took, for the report (the whole run must stay under 10 minutes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as ``name`` and say so on stdout."""
        print(f"[bench] {name} ...", flush=True)
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 1)
            print(f"[bench] {name} done in {self.seconds[name]:.1f} s", flush=True)


async def _create_competitions(settings: AllServicesSettings, count: int) -> None:
    pool = await create_pool(settings)
    try:
        for index in range(count):
            await create_competition(
                pool, CompetitionCreate.model_validate(competition_body(index))
            )
    finally:
        await pool.close()


async def _checkpoint(settings: AllServicesSettings) -> bool:
    """Write out the drain's dirty pages before the latency phases (False: not allowed).

    The drain writes ~0.5 GB of WAL, and the checkpoint that starts when ``max_wal_size`` is
    reached is spread over the next minutes (``checkpoint_completion_target``): in a full
    run of 2026-12-08 it ran through the freshness phase, and one commit of the idle phase
    waited 45-75 ms for the disk (idle p99 65 ms, 17-29 ms in the other runs). A CHECKPOINT
    at full speed right after the drain keeps the drain's aftermath out of the phases that
    follow; the checkpoints their own writes cause stay in their figures.
    """
    pool = await create_pool(settings)
    try:
        await pool.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        logger.warning(
            "CHECKPOINT refused (needs pg_checkpoint): the drain's checkpoint may overlap"
            " the phases after it"
        )
        return False
    finally:
        await pool.close()
    return True


def _ranked_fraction(ranker: dict[str, Any]) -> float:
    """How much of each competition the drain ranked (it may stop at its time bound; each
    partition is applied in order, so the first events of every competition are in)."""
    return min(1.0, ranker["committed"] / ranker["events"]) if ranker["events"] else 0.0


def _members_of(index: int, config: BenchConfig) -> int:
    """Distinct users the ranker phase ranks in competition ``index``."""
    per_competition = max(config.ranker_events // config.competitions, 1)
    return len(
        {
            event_target(index + config.competitions * k, config.competitions, config.users)[1]
            for k in range(per_competition)
        }
    )


async def run_bench(
    base: AllServicesSettings,
    config: BenchConfig,
    *,
    work_dir: Path,
    results_path: Path,
    profile: bool = False,
    phases: frozenset[str] = ALL_PHASES,
) -> dict[str, Any]:
    """Run the ``phases`` of ``config`` (default: every one) and write ``results_path``.

    A partial run (``--phases``) still measures the naive app baseline when ingest runs, so
    ratios stay same-run; the figures, ratios and targets of the phases it skipped show as not
    measured.
    """
    full = phases == ALL_PHASES
    run_id = secrets.token_hex(4)
    open_files = raise_open_files_limit()
    settings = bench_settings(base, run_id)
    work_dir = work_dir / run_id
    stack = BenchStack(settings=settings, work_dir=work_dir, run_id=run_id)
    clock = PhaseClock()
    figures: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    info = machine_info()
    info["open_files_limit"] = open_files
    token = issue_token(settings, "bench-server", ["scores:write:any"], ttl_s=TOKEN_TTL_S)
    started = time.monotonic()

    @contextlib.contextmanager
    def sampled(name: str, service: str) -> Iterator[None]:
        member = stack.services.get(service)
        pid = member.process.process.pid if (profile and member) else None
        output = work_dir / "profiles" / f"{name}.txt"
        with profiled(pid, output):
            yield
        if pid is not None:
            profiles[name] = {"file": str(output), **summarize(output)}

    try:
        with clock.phase("stack"):
            await stack.start()
            await _create_competitions(settings, config.competitions)
        if full:
            with clock.phase("redis ceiling"):
                figures["redis"] = redis_ceiling(stack, config)
        if "ingest" in phases:
            with clock.phase("naive app"):
                naive = await stack.serve_naive()
                redis = create_redis(settings)
                try:
                    await seed_naive(redis, stack.naive_key, _members_of(7, config))
                finally:
                    await redis.aclose()
                naive_load = naive_post_load(naive.url, config, naive.process.process.pid)
            with clock.phase("ingest throughput"):
                sink = {"topic_score_events": stack.sink_topic}
                ingest = await stack.serve("ingest-sink", "ingest", **sink)
                ingest_pid = ingest.process.process.pid
                single_load = ingest_single_load(ingest.url, token, run_id, config, ingest_pid)
                with sampled("ingest_single", "ingest-sink"):
                    naive_post, single = wrk_figures_interleaved(
                        [naive_load, single_load],
                        work_dir,
                        duration_s=config.http_duration_s,
                        repeats=config.http_pair_repeats,
                        warmup_s=config.warmup_s,
                    )
                with sampled("ingest_batch", "ingest-sink"):
                    batch = ingest_batch(ingest.url, token, run_id, work_dir, config, ingest_pid)
                figures["ingest"] = {"single": single, "batch": batch}
                stack.stop("ingest-sink")
            with clock.phase("naive app GET"):
                figures["naive"] = {
                    "post": naive_post,
                    "get": naive_get(naive.url, work_dir, config),
                }
                stack.stop("naive")
        if "ranker" in phases:
            with clock.phase("ranker drain"):
                ranker_profile = work_dir / "profiles" / "ranker.txt" if profile else None
                figures["ranker"] = await run_ranker_phase(stack, config, ranker_profile)
                if ranker_profile is not None:
                    profiles["ranker"] = {"file": str(ranker_profile), **summarize(ranker_profile)}
                stack.stop("ranker")
            with clock.phase("reconcile passes"):
                figures["reconcile"] = await time_passes(settings)
            with clock.phase("checkpoint"):
                figures["ranker"]["checkpointed"] = await _checkpoint(settings)
        if phases & {"freshness", "query", "notifier"}:
            with clock.phase("services"):
                live = {"topic_score_events": stack.live_topic}
                ingest = await stack.serve("ingest", "ingest", **live)
                stack.start_ranker(
                    "ranker-live", **live, ranker_group_id=f"{settings.ranker_group_id}-live"
                )
                query = await stack.serve("query", "query")
                notifier = await stack.serve("notifier", "notifier")
        if "freshness" in phases:
            with clock.phase("freshness"):
                freshness = FreshnessTarget(
                    ingest_url=ingest.url,
                    query_url=query.url,
                    notifier_url=notifier.url,
                    token=token,
                    tag=f"{run_id}-f",
                    metrics_urls={
                        "ingest": ingest.url,
                        "ranker": stack.services["ranker-live"].url,
                        "query": query.url,
                        "notifier": notifier.url,
                    },
                    notify_interval_s=1 / settings.notify_max_hz,
                )
                with (
                    sampled("freshness_ingest", "ingest"),
                    sampled("freshness_ranker", "ranker-live"),
                    sampled("freshness_query", "query"),
                    sampled("freshness_notifier", "notifier"),
                ):
                    figures["freshness"] = await run_freshness(freshness, work_dir, config)
        if "query" in phases:
            with clock.phase("query"):
                with sampled("query_hot", "query"):
                    hot = query_hot(query.url, work_dir, config)
                stack.stop("query")
                cold_query = await stack.serve("query-cold", "query", query_cache_ttl_ms=0)
                ranked = _ranked_fraction(figures["ranker"]) if "ranker" in figures else 0.0
                with sampled("query_cold", "query-cold"):
                    cold = query_cold(cold_query.url, work_dir, config, ranked)
                stack.stop("query-cold")
                figures["query"] = {"hot": hot, "cold": cold}
        if "notifier" in phases:
            with clock.phase("notifier"), sampled("notifier", "notifier"):
                target = NotifierTarget(
                    notifier_url=notifier.url,
                    notifier_pid=notifier.process.process.pid,
                    ingest_url=ingest.url,
                    token=token,
                    competition_id=competition_id(NOTIFIER_COMPETITION),
                    tag=f"{run_id}-n",
                    metrics_urls={
                        "ingest": ingest.url,
                        "ranker": stack.services["ranker-live"].url,
                        "notifier": notifier.url,
                    },
                )
                figures["notifier"] = await run_notifier_phase(target, work_dir, config)
    finally:
        with clock.phase("clean-up"):
            await stack.close()
    ratio = ratios(figures)
    results: dict[str, Any] = {
        "config": config.name,
        "phases": "all" if full else ",".join(sorted(phases)),
        "run_id": run_id,
        "machine": info,
        "settings": {
            "http_workers": settings.http_workers,
            "kafka_linger_ms": settings.kafka_linger_ms,
            "acks": "all",
            "rate_server_per_s": settings.rate_server_per_s,
            "rate_server_burst": settings.rate_server_burst,
            "query_cache_ttl_ms": settings.query_cache_ttl_ms,
            "notify_max_hz": settings.notify_max_hz,
        },
        "figures": figures,
        "ratios": ratio,
        "targets": targets(figures, ratio),
        "phase_seconds": clock.seconds,
        "total_seconds": round(time.monotonic() - started, 1),
        "profiles": profiles,
    }
    results["table"] = table(results)
    write_results(results_path, results)
    return results
