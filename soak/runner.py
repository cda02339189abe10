"""``podium soak``: run the platform as separate processes, load it, break it, check it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.settings import AllServicesSettings
from shared.auth import issue_token
from soak.check import CheckResult, compare, wait_for_drain
from soak.faults import PROBE_COMPETITION, EndToEndProbe, FaultRecord, run_schedule
from soak.http import SoakClient
from soak.load import COMPETITIONS, CompetitionPlan, LoadStats, WriteLoad
from soak.oracle import OracleCompetition, OracleResult, replay
from soak.platform import Platform
from soak.plots import write_plots
from soak.postmortem import locate_lost
from soak.readers import ReadLoad, Subscriber
from soak.report import build_report, format_report
from soak.timeline import Timeline, broker_summary, timeline_rows

logger = logging.getLogger(__name__)

SUBSCRIBERS_PER_COMPETITION = 2
CONVERGE_TIMEOUT_S = 10.0
LOCATE_TIMEOUT_S = 120.0


async def run_soak(
    base: AllServicesSettings,
    *,
    duration_s: float,
    rate_eps: float,
    work_dir: Path,
    report_path: Path | None,
    users: int = 200,
    seed: int = 7,
    batch_share: float = 0.3,
    command: str = "podium soak",
    plots_dir: Path | None = None,
    redis_cluster: bool = False,
) -> dict[str, Any]:
    """One whole soak run; returns the report (also written to ``report_path`` as JSON, and
    drawn into ``plots_dir`` as a PNG timeline when given). ``redis_cluster`` runs it on a
    3-master Redis Cluster (a master is killed instead of Redis restarts)."""
    run_id = uuid.uuid4().hex[:8]
    platform = Platform.create(
        base.model_copy(
            update={
                "rate_server_per_s": max(10_000.0, rate_eps * 10),
                "rate_server_burst": 100_000,
                # readers and reconnecting subscribers come from one address (#15)
                "query_rate_anonymous_per_s": 100_000.0,
                "query_rate_anonymous_burst": 1_000_000,
                "ws_connect_rate_anonymous_per_s": 100_000.0,
                "ws_connect_anonymous_burst": 1_000_000,
            }
        ),
        work_dir / run_id,
        run_id,
        redis_cluster=redis_cluster,
    )
    progress = RunProgress()
    try:
        await platform.start()
        report = await _drive(
            platform, progress, duration_s, rate_eps, users, seed, command, batch_share
        )
    except (asyncio.CancelledError, KeyboardInterrupt):
        # Ctrl-C (asyncio.run cancels this task): report what ran so far, then stop as asked
        report = _partial_report(progress, command, duration_s, rate_eps)
    finally:
        await platform.stop()
    report["redis"] = "cluster (3 masters, 3 replicas)" if redis_cluster else "single"
    text = format_report(report)
    print(text, flush=True)
    if report_path is not None:
        _write_json(report_path, report)
    if plots_dir is not None:
        print(f"soak | timeline plot: {write_plots(report, plots_dir)}", flush=True)
    return report


@dataclass
class RunProgress:
    """What a run has done so far: enough for a partial report when it is interrupted."""

    load: WriteLoad | None = None
    timeline: Timeline | None = None
    run_started: float = 0.0
    faults: list[FaultRecord] = field(default_factory=list)
    subscribers: int = 0


def _partial_report(
    progress: RunProgress, command: str, duration_s: float, rate_eps: float
) -> dict[str, Any]:
    """The report of an interrupted run: its load figures and faults so far, no verdict on
    loss (the final check did not run)."""
    load = progress.load
    stats = load.stats if load is not None else LoadStats()
    report = build_report(
        command=command,
        duration_s=duration_s,
        rate_eps=rate_eps,
        run_started=progress.run_started or time.monotonic(),
        stats=stats,
        faults=progress.faults,
        check=CheckResult(),
        lost=0,
        subscribers=progress.subscribers,
        max_in_flight=load.max_in_flight if load is not None else 0,
        interrupted=True,
    )
    _attach_timeline(report, stats, progress.timeline, duration_s)
    report["events"]["lost"] = report["events"]["double_counted"] = None
    report["stores_equal_oracle"] = dict.fromkeys(report["stores_equal_oracle"])
    report["elapsed_s"] = (
        round(time.monotonic() - progress.run_started, 1) if progress.run_started else 0.0
    )
    return report


def _write_json(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")


async def _create_competitions(client: SoakClient, platform: Platform, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    plans = [*COMPETITIONS, CompetitionPlan(PROBE_COMPETITION, "desc", "latest")]
    for plan in plans:
        response = await client.post(
            f"{platform.url('ingest-a')}/api/v1/competitions", json=plan.body(), headers=headers
        )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"creating {plan.id}: {response.status_code} {response.text}")


async def _drive(
    platform: Platform,
    progress: RunProgress,
    duration_s: float,
    rate_eps: float,
    users: int,
    seed: int,
    command: str,
    batch_share: float,
) -> dict[str, Any]:
    settings = platform.settings
    admin = issue_token(settings, "soak-admin", ["admin"])
    writer = issue_token(settings, "soak-server", ["scores:write:any"])
    async with SoakClient(timeout_s=5.0, max_connections=256) as client:
        await _create_competitions(client, platform, admin)
        load = WriteLoad(
            [platform.url("ingest-a"), platform.url("ingest-b")],
            writer,
            rate_eps,
            users,
            seed,
            batch_share=batch_share,
            max_batch_events=settings.ingest_batch_max_events,
        )
        progress.load = load
        reads = ReadLoad(
            [platform.url("query"), platform.url("query-b")],
            rate_rps=max(5.0, rate_eps / 10),
            users=users,
            stats=load.stats,
            seed=seed + 1,
        )
        ws_url = platform.url("notifier").replace("http://", "ws://")
        subscribers = [
            Subscriber(ws_url, plan.id)
            for plan in COMPETITIONS
            for _ in range(SUBSCRIBERS_PER_COMPETITION)
        ]
        progress.subscribers = len(subscribers)
        probe = EndToEndProbe(platform, writer)
        await probe.wait_healthy(client)
        stop_reading = asyncio.Event()
        background = [asyncio.create_task(s.run(stop_reading)) for s in subscribers]
        background.append(asyncio.create_task(reads.run(client, stop_reading)))
        run_started = progress.run_started = time.monotonic()
        timeline = progress.timeline = Timeline(platform, writer, run_started)
        stop_sampling = asyncio.Event()
        background.append(asyncio.create_task(timeline.run(client, stop_sampling)))
        faults_task = asyncio.create_task(
            run_schedule(platform, probe, client, duration_s, run_started, progress.faults)
        )
        printer = asyncio.create_task(_print_progress(load, run_started, duration_s))
        try:
            await load.run(client, duration_s)
            faults = await faults_task
        except asyncio.CancelledError:
            # interrupted: stop the readers and the schedule (a stalled broker is resumed)
            for task in (*background, faults_task):
                task.cancel()
            raise
        finally:
            printer.cancel()
            stop_sampling.set()  # the timeline covers the load and the faults
        missing = await wait_for_drain(settings, set(load.stats.accepted))
        lost_where = await _locate(settings, missing) if missing else None
        await asyncio.sleep(max(1.0, settings.query_cache_ttl_ms / 1000 * 2))
        expected = replay(
            {
                p.id: OracleCompetition(p.id, p.sort_order, p.operator, p.reset, teams=p.teams)
                for p in COMPETITIONS
            },
            # generated "now", so received within its period: the grace rule never applies
            [{**e, "kind": "score", "received_at": e["ts"]} for e in load.stats.accepted.values()],
            grace_s=settings.ranker_period_grace_s,
        )
        check = await compare(
            settings,
            platform.url("query"),
            expected,
            {p.id for p in COMPETITIONS if p.operator == "sum"},
        )
        check.websocket_equal = await _websockets_converge(subscribers, expected)
        stop_reading.set()
        for task in background:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
    report = build_report(
        command=command,
        duration_s=duration_s,
        rate_eps=rate_eps,
        run_started=run_started,
        stats=load.stats,
        faults=faults,
        check=check,
        lost=len(missing),
        subscribers=len(subscribers),
        max_in_flight=load.max_in_flight,
    )
    report["batch_share"] = batch_share
    # what a post-mortem starts from: the lost events themselves (competition, user, value, ts)
    report["lost_examples"] = [load.stats.accepted[event_id] for event_id in sorted(missing)[:10]]
    if lost_where is not None:
        report["lost_where"] = lost_where
    _attach_timeline(report, load.stats, timeline, duration_s)
    return report


async def _locate(settings: AllServicesSettings, missing: set[str]) -> dict[str, Any]:
    """Where the lost events are on the topic (a failed post-mortem must not hide the loss)."""
    try:
        return await asyncio.wait_for(locate_lost(settings, missing), LOCATE_TIMEOUT_S)
    except Exception as error:  # the report says why instead
        return {"error": repr(error)}


def _attach_timeline(
    report: dict[str, Any], stats: LoadStats, timeline: Timeline | None, duration_s: float
) -> None:
    """The per-second timeline and the broker's summary drawn from it."""
    report["timeline"] = timeline_rows(stats, timeline)
    report["broker"] = broker_summary(report["timeline"], duration_s)
    report["ranker_records"] = timeline.ranker_records.totals() if timeline is not None else {}


async def _print_progress(load: WriteLoad, run_started: float, duration_s: float) -> None:
    """A line every 10 s so a long run shows that it moves, and when its load ends."""
    while True:
        await asyncio.sleep(10)
        stats = load.stats
        elapsed_s = time.monotonic() - run_started
        behind = f", behind schedule {len(stats.behind_s)} s" if stats.behind_s else ""
        print(
            f"soak | {elapsed_s:5.0f} s of {duration_s:.0f} s (load ends in"
            f" {max(0.0, duration_s - elapsed_s):.0f} s): offered {stats.offered},"
            f" accepted {len(stats.accepted)}, retried attempts {stats.retries}{behind}",
            flush=True,
        )


async def _websockets_converge(subscribers: list[Subscriber], expected: OracleResult) -> bool:
    """Whether every subscriber's last pushed top equals the oracle's alltime top 10."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while True:
        lagging = [
            s
            for s in subscribers
            if [(e["user_id"], e["score"]) for e in s.top]
            != expected.ranking(s.competition_id, "alltime")[:10]
        ]
        if not lagging:
            return True
        if time.monotonic() > deadline:
            logger.warning("%d websocket subscribers did not converge", len(lagging))
            return False
        await asyncio.sleep(0.25)
