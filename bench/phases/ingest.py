"""Ingest throughput: single-event POSTs and 500-event batches, authenticated, acks=all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import scripts
from bench.config import BenchConfig
from bench.measure import WrkLoad, wrk_figure


def ingest_single_load(
    base_url: str, token: str, run_tag: str, config: BenchConfig, pid: int | None = None
) -> WrkLoad:
    """``POST /api/v1/scores`` at the run's connections; ids unique per repeat (with the
    ingest process's ``pid``: its CPU per request too). Measured interleaved with the naive
    app's POST, its baseline."""
    return WrkLoad(
        f"{base_url}/api/v1/scores",
        lambda repeat: scripts.ingest_single(
            f"{run_tag}-s{repeat + 1}", token, config.competitions, config.users
        ),
        "ingest-single",
        config.http_connections,
        pid=pid,
    )


def ingest_batch(
    base_url: str,
    token: str,
    run_tag: str,
    work_dir: Path,
    config: BenchConfig,
    pid: int | None = None,
) -> dict[str, Any]:
    """``POST /api/v1/scores/batch`` with ``batch_events`` events per request (with ``pid``:
    the ingest process's CPU per event too)."""
    figure = wrk_figure(
        f"{base_url}/api/v1/scores/batch",
        lambda repeat: scripts.ingest_batch(
            f"{run_tag}-b{repeat + 1}",
            token,
            config.competitions,
            config.users,
            config.batch_events,
        ),
        work_dir,
        "ingest-batch",
        connections=config.batch_connections,
        duration_s=config.http_duration_s,
        repeats=config.http_repeats,
        warmup_s=config.warmup_s,
        events_per_request=config.batch_events,
        pid=pid,
    )
    figure["events_per_request"] = config.batch_events
    return figure
