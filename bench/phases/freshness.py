"""End-to-end freshness: from a score's 202 to its visibility in the query API and on a socket.

One idle phase (probes only, nothing else offered) and one phase per offered level, whose load
is k6's constant-arrival-rate executor posting batches to ingest (bench/k6_scripts/
ingest_open_loop.js): open loop, so the offered rate holds whatever the server does, and k6's
own CPU is not the bench's event loop.

A probe posts one event of a new user with a new best score (microseconds since the epoch, so
every probe tops its competition) to a *probe competition*, which the load never touches: a
client gets at most ``PODIUM_NOTIFY_MAX_HZ`` frames, and a background change just before the
probe would delay its frame by that rate limit, not by the pipeline. Probe competitions take
turns, so each one gets a probe every ``probe competitions / probe rate`` seconds (≥ 1 s).
From the 202 on, the probe polls the competition's cached top page in the query API (the
micro-cache is in the path: the page is only fresh once the change feed retired it) until the
user is on it. The page holds as many rows as the phase sends probes to one competition: only a
later probe of the same competition can rank above a probe, so a probe applied in the same
batch as (or just before) the next one is still seen, not lost behind it for the timeout.
One WebSocket per probe competition, opened before the phase, timestamps every frame,
matched with the probes afterwards. A probe not seen within ``PROBE_TIMEOUT_S`` counts as that
timeout in the percentiles (and in ``probes_unseen``), so a backlog cannot hide.

Probe-side overhead is measured, not assumed: the bench process's CPU per probe, and the lag
of its event loop (a 10 ms ticker's overshoot) while the probes run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import websockets
from websockets.asyncio.client import ClientConnection

from bench.config import BenchConfig
from bench.cpu_shares import MachineCpu
from bench.k6 import K6Run, metric_value
from bench.measure import latency_summary, percentile
from bench.raw_http import RawHttpClient, RawHttpError
from bench.stages import scrape, stage_deltas
from bench.workload import competition_id
from services.query.params import MAX_LIMIT as MAX_TOP_LIMIT

PROBE_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 60.0
TOUCH_TIMEOUT_S = 120.0
SETTLED_MS = 2000.0
TOUCH_BATCH = 500
LOAD_RAMP_S = 1.0
K6_GRACE_S = 30.0
# poll every 5% of the time since the 202 (2 ms at first, 50 ms at most): resolution ≤ 5%,
# and a backlog of slow probes does not turn into a flood of polls
POLL_MIN_S = 0.002
POLL_MAX_S = 0.05
POLL_FRACTION = 0.05
LAG_TICK_S = 0.01
WS_DRAIN_S = 0.5


@dataclass(frozen=True)
class FreshnessTarget:
    """The services a freshness phase drives, and where each exports its metrics."""

    ingest_url: str
    query_url: str
    notifier_url: str
    token: str
    tag: str
    metrics_urls: dict[str, str]
    notify_interval_s: float = 0.2
    """The notifier's least time between two frames to one client (1 / PODIUM_NOTIFY_MAX_HZ)."""


@dataclass
class Watcher:
    """One WebSocket subscribed to a probe competition: every frame with its arrival time."""

    competition: str
    frames: list[tuple[float, str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


@dataclass
class Probe:
    """One probe: its competition and user, when its 202 came, what the client saw."""

    competition: str
    user: str
    page_rows: int = 1
    """Rows of the top page polled: the phase's probes per competition (see the module)."""
    post_ms: float | None = None
    accepted_at: float | None = None
    query_ms: float | None = None
    poll_errors: int = 0


async def _watch(url: str, watcher: Watcher, ready: asyncio.Event) -> None:
    async with websockets.connect(
        url, compression=None, open_timeout=30, ping_interval=None, max_queue=None
    ) as ws:
        await ws.recv()  # the snapshot
        ready.set()
        await _collect(ws, watcher)


async def _collect(ws: ClientConnection, watcher: Watcher) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for message in ws:
            text = message if isinstance(message, str) else message.decode()
            watcher.frames.append((time.monotonic(), text))


async def _open_watchers(notifier_url: str, competitions: list[str]) -> list[Watcher]:
    base = notifier_url.replace("http://", "ws://")
    watchers = []
    for cid in competitions:
        watcher = Watcher(cid)
        ready = asyncio.Event()
        watcher.task = asyncio.create_task(
            _watch(f"{base}/ws/leaderboards/{cid}?top=10", watcher, ready)
        )
        await asyncio.wait_for(ready.wait(), 30)
        watchers.append(watcher)
    return watchers


async def _close_watchers(watchers: list[Watcher]) -> None:
    for watcher in watchers:
        if watcher.task is not None:
            watcher.task.cancel()
    await asyncio.gather(*(w.task for w in watchers if w.task), return_exceptions=True)


@dataclass(frozen=True)
class Clients:
    """The probes' HTTP clients: httpx for the POST, the cheap poller for the query API."""

    http: httpx.AsyncClient
    query: RawHttpClient


async def _probe(clients: Clients, target: FreshnessTarget, probe: Probe, timeout_s: float) -> None:
    """Post the probe's event, then poll the top page until the user is on it."""
    sent = time.monotonic()
    try:
        response = await clients.http.post(
            f"{target.ingest_url}/api/v1/scores",
            json={
                "event_id": probe.user,
                "competition_id": probe.competition,
                "user_id": probe.user,
                "value": float(time.time_ns() // 1000),
            },
            headers={"Authorization": f"Bearer {target.token}"},
        )
    except httpx.HTTPError:
        return  # not accepted: counted in probes_refused
    accepted = time.monotonic()
    if response.status_code != 202:
        return
    probe.accepted_at, probe.post_ms = accepted, (accepted - sent) * 1000
    path = f"/api/v1/leaderboards/{probe.competition}/top?limit={probe.page_rows}"
    while (elapsed := time.monotonic() - accepted) < timeout_s:
        try:
            status, body = await clients.query.get(path)
        except RawHttpError:
            status, body = 0, b""  # the query service did not answer: poll again
            probe.poll_errors += 1
        if status == 200:
            entries = orjson.loads(body)["entries"]
            if any(entry["user_id"] == probe.user for entry in entries):
                probe.query_ms = (time.monotonic() - accepted) * 1000
                return
        await asyncio.sleep(min(POLL_MAX_S, max(POLL_MIN_S, elapsed * POLL_FRACTION)))


def _ws_latencies(watchers: dict[str, Watcher], probes: list[Probe]) -> list[float | None]:
    """Per accepted probe: 202 → the first frame naming its user (None: never seen)."""
    found: list[float | None] = []
    for probe in probes:
        if probe.accepted_at is None:
            continue
        needle = f'"user_id":"{probe.user}"'
        frames = watchers[probe.competition].frames
        at = next((t for t, text in frames if needle in text), None)
        found.append(None if at is None else max(0.0, (at - probe.accepted_at) * 1000))
    return found


def _summary(latencies: list[float | None], prefix: str = "") -> dict[str, float]:
    """p50/p99/max over every probe, an unseen one counted as the probe timeout."""
    timeout_ms = PROBE_TIMEOUT_S * 1000
    samples = [timeout_ms if latency is None else latency for latency in latencies]
    summary = latency_summary(samples)
    return {f"{prefix}{key}": value for key, value in summary.items()}


class LoopLag:
    """How late a 10 ms ticker wakes in the bench process: a starved prober shows here."""

    def __init__(self) -> None:
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin ticking."""
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(LAG_TICK_S)
            self.lags_ms.append(max(0.0, (time.monotonic() - before - LAG_TICK_S) * 1000))

    async def stop(self) -> dict[str, float]:
        """Stop; the p50/p99/max lag in ms."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        return {
            "loop_lag_p50_ms": round(percentile(self.lags_ms, 0.5), 2),
            "loop_lag_p99_ms": round(percentile(self.lags_ms, 0.99), 2),
            "loop_lag_max_ms": round(max(self.lags_ms, default=0.0), 2),
        }


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


@dataclass(frozen=True)
class Load:
    """One offered level: k6 posts ``rate_rps`` batches of ``events`` per second."""

    rate_rps: int
    events: int
    duration_s: float


def _load_for(level_eps: float, probe_rate: float, config: BenchConfig) -> Load:
    """The k6 load that, with the probes, offers ``level_eps`` for the phase."""
    events = config.freshness_events_per_request
    rate_rps = max(1, round((level_eps - probe_rate) / events))
    return Load(rate_rps, events, LOAD_RAMP_S + config.freshness_duration_s + 0.5)


async def _start_load(
    load: Load, target: FreshnessTarget, name: str, work_dir: Path, config: BenchConfig
) -> K6Run:
    background = config.competitions - config.freshness_probe_competitions
    run = K6Run(
        "ingest_open_loop.js",
        {
            "URL": target.ingest_url,
            "TOKEN": target.token,
            "TAG": f"{target.tag}-{name}",
            "RATE": str(load.rate_rps),
            "DURATION_S": str(load.duration_s),
            "EVENTS": str(load.events),
            "FIRST_COMPETITION": "0",
            "COMPETITIONS": str(background),
            "USERS": "5000",
        },
        work_dir,
        f"k6-freshness-{name}",
        config.k6_memory_limit_mib,
    )
    await run.start()
    return run


def _load_figures(summary: dict[str, Any], load: Load, k6_cpu_s: float) -> dict[str, Any]:
    requests = metric_value(summary, "http_reqs", "count")
    return {
        "executor": "constant-arrival-rate",
        "rate_rps": load.rate_rps,
        "events_per_request": load.events,
        "duration_s": load.duration_s,
        "events_accepted": int(metric_value(summary, "events_accepted", "count")),
        "requests": int(requests),
        "requests_refused": int(metric_value(summary, "requests_refused", "count")),
        "requests_refused_4xx": int(metric_value(summary, "requests_refused_4xx", "count")),
        "requests_refused_5xx": int(metric_value(summary, "requests_refused_5xx", "count")),
        "requests_unanswered": int(metric_value(summary, "requests_unanswered", "count")),
        "dropped_iterations": int(metric_value(summary, "dropped_iterations", "count")),
        "request_p50_ms": round(metric_value(summary, "http_req_duration", "p(50)"), 2),
        "request_p99_ms": round(metric_value(summary, "http_req_duration", "p(99)"), 2),
        "k6_cpu_us_per_request": round(k6_cpu_s / max(requests, 1) * 1e6, 1),
    }


async def _measure(
    clients: Clients,
    target: FreshnessTarget,
    watchers: dict[str, Watcher],
    name: str,
    probes_total: int,
    probe_interval_s: float,
    load: Load | None,
    work_dir: Path,
    config: BenchConfig,
) -> dict[str, Any]:
    """One phase: optional k6 load, ``probes_total`` probes ``probe_interval_s`` apart."""
    competitions = list(watchers)
    for watcher in watchers.values():
        watcher.frames.clear()
    me = psutil.Process()
    before = await scrape(target.metrics_urls)
    run = None
    if load is not None:
        run = await _start_load(load, target, name, work_dir, config)
        await asyncio.sleep(LOAD_RAMP_S)
    lag = LoopLag()
    lag.start()
    cpu_start = _cpu_s(me)
    machine_start = MachineCpu.take()
    started = time.monotonic()
    page_rows = math.ceil(probes_total / len(competitions))
    if page_rows > MAX_TOP_LIMIT:  # the query API would refuse every poll
        raise ValueError(f"{page_rows} probes per competition: add probe competitions")
    probes = [
        Probe(competitions[index % len(competitions)], f"{target.tag}-{name}-p{index}", page_rows)
        for index in range(probes_total)
    ]
    tasks = []
    for index, probe in enumerate(probes):
        await asyncio.sleep(max(0.0, started + index * probe_interval_s - time.monotonic()))
        tasks.append(asyncio.create_task(_probe(clients, target, probe, PROBE_TIMEOUT_S)))
    # over the probes' schedule, while the load still runs (the last probes may wait long)
    cpu_shares = MachineCpu.take().shares_since(machine_start)
    await asyncio.gather(*tasks)
    await asyncio.sleep(WS_DRAIN_S)
    probe_cpu_s = _cpu_s(me) - cpu_start
    loop = await lag.stop()
    load_figures: dict[str, Any] = {}
    achieved_eps = offered_eps = probes_total / (probes_total * probe_interval_s)
    if run is not None and load is not None:
        summary = await run.wait(load.duration_s + K6_GRACE_S)
        load_figures = _load_figures(summary, load, run.cpu_s)
        offered_eps += load.rate_rps * load.events
        achieved_eps += load_figures["events_accepted"] / load.duration_s
    after = await scrape(target.metrics_urls)
    accepted = [probe for probe in probes if probe.accepted_at is not None]
    query = [probe.query_ms for probe in accepted]
    ws = _ws_latencies(watchers, probes)
    posts = [probe.post_ms for probe in accepted if probe.post_ms is not None]
    return {
        "offered_eps": round(offered_eps, 1),
        "achieved_eps": round(achieved_eps, 1),
        "probes": len(probes),
        "probes_refused": len(probes) - len(accepted),
        "probes_unseen": sum(1 for latency in query if latency is None),
        "ws_unseen": sum(1 for latency in ws if latency is None),
        "poll_errors": sum(probe.poll_errors for probe in probes),
        **_summary(query),
        **_summary(ws, "ws_"),
        "probe_post_p50_ms": round(percentile(posts, 0.5), 2),
        "probe_post_p99_ms": round(percentile(posts, 0.99), 2),
        "probe_side": {
            "cpu_us_per_probe": round(probe_cpu_s / max(len(probes), 1) * 1e6, 1),
            "cpu_share_of_core": round(probe_cpu_s / (time.monotonic() - started), 3),
            **loop,
        },
        "load": load_figures,
        "cpu_shares": cpu_shares,
        "stages": stage_deltas(before, after),
    }


async def _settle(
    clients: Clients,
    target: FreshnessTarget,
    cid: str,
    tag: str,
    timeout_s: float = SETTLE_TIMEOUT_S,
) -> None:
    """Wait until a probe makes it through within ``SETTLED_MS``: the ranker is live and has
    no backlog left (one probe seen late only says the ranker got to it, not that it is
    done with what came before: it may still be building competitions)."""
    deadline = time.monotonic() + timeout_s
    for attempt in itertools.count():
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            break
        probe = Probe(cid, f"{target.tag}-{tag}-{attempt}")
        await _probe(clients, target, probe, remaining_s)
        if probe.query_ms is not None and probe.query_ms <= SETTLED_MS:
            return
    raise RuntimeError(
        f"no probe reached the query API within {SETTLED_MS:.0f} ms for {timeout_s:.0f} s:"
        " the live ranker is not running or still behind"
    )


async def _rate_limit_passed(target: FreshnessTarget) -> None:
    """Wait until no probe socket is inside the notifier's rate limit any more.

    A settling probe (and the touch of every competition) was just pushed to a probe
    competition's socket; the first probe of the next phase goes to the same competition, and
    its frame would wait out the rest of the client's frame interval: the rate limit, not the
    pipeline (it was the idle phase's WebSocket p99: one probe in 50 at 125-147 ms while the
    query API's p99 was 22 ms).
    """
    await asyncio.sleep(target.notify_interval_s * 1.5)


async def _touch_every_competition(
    clients: Clients, target: FreshnessTarget, competitions: int
) -> None:
    """One event in every competition, then wait until the ranker applied them.

    A competition's first event costs the ranker a one-time build of its Redis copy (the
    built marker does not exist yet). A full run's drain phase has done that for every
    competition; a ``--phases freshness`` run does it here, so the phases measure the
    steady path either way.
    """
    events = [
        {
            "event_id": f"{target.tag}-touch-{index}",
            "competition_id": competition_id(index),
            "user_id": "touch",
            "value": 0.0,
        }
        for index in range(competitions)
    ]
    for start in range(0, len(events), TOUCH_BATCH):
        response = await clients.http.post(
            f"{target.ingest_url}/api/v1/scores/batch",
            json={"events": events[start : start + TOUCH_BATCH]},
            headers={"Authorization": f"Bearer {target.token}"},
        )
        response.raise_for_status()


async def run_freshness(
    target: FreshnessTarget, work_dir: Path, config: BenchConfig
) -> dict[str, Any]:
    """The idle phase, then each offered level of ``config.freshness_levels_eps``."""
    count = config.competitions
    competitions = [
        competition_id(index) for index in range(count - config.freshness_probe_competitions, count)
    ]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    results: dict[str, Any] = {}
    query = RawHttpClient(target.query_url)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as http:
        clients = Clients(http, query)
        watched = await _open_watchers(target.notifier_url, competitions)
        watchers = {watcher.competition: watcher for watcher in watched}
        try:
            await _touch_every_competition(clients, target, config.competitions)
            await _settle(clients, target, competitions[0], "warm", TOUCH_TIMEOUT_S)
            await _rate_limit_passed(target)
            results["idle"] = await _measure(
                clients,
                target,
                watchers,
                "idle",
                config.freshness_idle_probes,
                config.freshness_idle_interval_s,
                None,
                work_dir,
                config,
            )
            probe_interval_s = 1 / config.freshness_probes_per_s
            for level in config.freshness_levels_eps:
                await _settle(clients, target, competitions[0], f"settle-{level:.0f}")
                await _rate_limit_passed(target)
                load = _load_for(level, config.freshness_probes_per_s, config)
                probes = round(config.freshness_duration_s * config.freshness_probes_per_s)
                results[f"{level:.0f}"] = await _measure(
                    clients,
                    target,
                    watchers,
                    f"{level:.0f}",
                    probes,
                    probe_interval_s,
                    load,
                    work_dir,
                    config,
                )
            await _settle(clients, target, competitions[0], "after")
        finally:
            await _close_watchers(watched)
            await query.aclose()
    return results
