"""Notifier fan-out: 1k / 5k / 10k WebSocket clients on one notifier process, k6 as the client.

Per level, one k6 run (bench/k6_scripts/notifier_clients.js) opens every client (a fixed
number of handshakes in flight) and the bench waits, through k6's REST API, until each has
its snapshot: ``connect_s`` is from the first dial to the last snapshot. Then probe events
with a new best score are posted one by one; the bench notes the wall-clock time of each 202
and k6 the wall-clock time each client first receives a frame holding the probe's user
(same machine, same clock), so a sample is the whole path 202 → ranker → change feed →
frame on that client. The frames are the notifier's own: nothing is added for the bench. A
client that has not shown a probe when the window ends (3 s after the last probe) is
``missed`` and counts in the percentiles as that late (at least), never left out.

Also per level: notifier RSS growth per connection, the notifier's CPU per connection
while connecting and per frame delivered while probing (process CPU seconds from /proc, not
wall-clock: the 2 cores are shared; the idle rate measured just before the probes is taken
off, so the figure is the fan-out's own), k6's own CPU per frame (idle rate off too), since
the client shares those cores, and the services' stage histograms over the probes
(``stages``: the notifier's ``podium_notifier_change_age_seconds`` is its share of the
202 → frame path).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import websockets
from websockets.asyncio.client import ClientConnection

from bench.config import BenchConfig
from bench.k6 import SCRIPTS
from bench.k6_api import LiveK6Run
from bench.measure import latency_summary
from bench.stages import scrape, stage_deltas

logger = logging.getLogger(__name__)

CLIENT_SCRIPT = SCRIPTS / "notifier_clients.js"
SETTLE_S = 1.0
DRAIN_S = 3.0  # after the last probe, before the clients are closed
_POLL_S = 0.05
_STALL_S = 5.0  # no client subscribed or failed for this long: stop waiting
_CLOSED_TIMEOUT_S = 60.0
# warm-up: a score must reach a WebSocket client within this before the first level starts
WARM_MS = 100.0
_WARM_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class NotifierTarget:
    """The notifier under test and how probes reach it (through ingest and the ranker)."""

    notifier_url: str
    notifier_pid: int
    ingest_url: str
    token: str
    competition_id: str
    tag: str
    metrics_urls: dict[str, str]  # service → base URL, for the stage histograms


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _probe(http: httpx.AsyncClient, target: NotifierTarget, user: str, value: float) -> float:
    """Post one score and return the wall-clock time (ms) of its 202."""
    response = await http.post(
        f"{target.ingest_url}/api/v1/scores",
        json={
            "event_id": user,
            "competition_id": target.competition_id,
            "user_id": user,
            "value": value,
        },
        headers={"Authorization": f"Bearer {target.token}"},
    )
    accepted_ms = time.time() * 1000
    response.raise_for_status()
    return accepted_ms


async def _frame_with(ws: ClientConnection, needle: str, timeout_s: float) -> bool:
    """Read frames until one holds ``needle`` (True) or ``timeout_s`` passes (False)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while True:
                frame = await ws.recv()
                text = frame if isinstance(frame, str) else frame.decode()
                if needle in text:
                    return True
    return False


async def _warm_up(http: httpx.AsyncClient, target: NotifierTarget, value: float) -> None:
    """Post scores until one reaches a client of the competition within ``WARM_MS``.

    A competition's first event after the ranker started costs a one-time build of its Redis
    copy (and ingest's and the notifier's caches a first load): in a run without the earlier
    phases that was the first 1,000-client probe's ~1 s, the level's whole p99. The values
    rank below every probe's (``value``), above anything the other phases wrote.
    """
    url = target.notifier_url.replace("http://", "ws://")
    deadline = time.monotonic() + _WARM_TIMEOUT_S
    async with websockets.connect(
        f"{url}/ws/leaderboards/{target.competition_id}?top=10",
        compression=None,
        open_timeout=_WARM_TIMEOUT_S,
        ping_interval=None,
    ) as ws:
        await ws.recv()  # the snapshot
        attempt = 0
        while time.monotonic() < deadline:
            user = f"{target.tag}-warm-{attempt}"
            started = time.monotonic()
            await _probe(http, target, user, value / 10 + attempt)
            remaining_s = max(deadline - time.monotonic(), 0.0)
            if (
                await _frame_with(ws, f'"user_id":"{user}"', remaining_s)
                and (time.monotonic() - started) * 1000 <= WARM_MS
            ):
                return
            attempt += 1
            # the next frame may wait out this client's frame interval (the rate limit)
            await asyncio.sleep(SETTLE_S)
    # the levels' figures will show it; a bench that stops here would show nothing
    logger.warning(
        "no score reached a WebSocket client within %.0f ms for %.0f s: measuring anyway",
        WARM_MS,
        _WARM_TIMEOUT_S,
    )


async def _connections(http: httpx.AsyncClient, notifier_url: str) -> float:
    """The notifier's open-connection gauge, from its /metrics."""
    text = (await http.get(f"{notifier_url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("podium_notifier_connections "):
            return float(line.split()[1])
    return 0.0


async def _wait_closed(http: httpx.AsyncClient, notifier_url: str) -> None:
    """Wait until the previous level's clients are gone from the notifier."""
    deadline = time.monotonic() + _CLOSED_TIMEOUT_S
    while time.monotonic() < deadline:
        if await _connections(http, notifier_url) == 0:
            return
        await asyncio.sleep(0.2)


async def _wait_subscribed(run: LiveK6Run, clients: int, timeout_s: float) -> None:
    """Poll k6's live counters until every client is subscribed or failed, the count stops
    moving for ``_STALL_S`` or time runs out. The live counters only gate the probes (they
    can trail the samples); the figures are counted from the samples afterwards."""
    deadline = time.monotonic() + timeout_s
    progress, moved_at = -1, time.monotonic()
    while time.monotonic() < deadline:
        done = await run.count("bench_ws_subscribed") + await run.count("bench_ws_failed")
        if done >= clients:
            return
        if done != progress:
            progress, moved_at = done, time.monotonic()
        elif time.monotonic() - moved_at > _STALL_S:
            return
        await asyncio.sleep(_POLL_S)


def _connections_made(run: LiveK6Run) -> tuple[int, int, float]:
    """Subscribed and failed clients, and seconds from the first dial to the last snapshot,
    from every sample the run wrote."""
    subscribed = int(sum(sample.value for sample in run.samples("bench_ws_subscribed")))
    failed = int(sum(sample.value for sample in run.samples("bench_ws_failed")))
    dialled = [sample.value for sample in run.samples("bench_ws_dial_at_ms")]
    opened = [sample.value for sample in run.samples("bench_ws_subscribed_at_ms")]
    connect_s = (max(opened) - min(dialled)) / 1000 if opened and dialled else 0.0
    return subscribed, failed, connect_s


def _per_probe(samples_by_probe: dict[int, list[float]]) -> list[dict[str, float]]:
    """Per probe: the first and the last client's latency (ms). The first is roughly the
    pipeline (ingest → ranker → change feed), last minus first the fan-out to every client."""
    return [
        {"first_ms": round(min(times), 1), "last_ms": round(max(times), 1), "clients": len(times)}
        for _, times in sorted(samples_by_probe.items())
        if times
    ]


async def _level(
    http: httpx.AsyncClient,
    target: NotifierTarget,
    clients: int,
    value: float,
    baseline_rss: int,
    work_dir: Path,
    config: BenchConfig,
) -> dict[str, Any]:
    """One level: connect ``clients`` with k6, probe, and reduce what k6 recorded."""
    notifier = psutil.Process(target.notifier_pid)
    users = [f"{target.tag}-n{clients}-{index}" for index in range(config.notifier_probes)]
    vus = max(1, min(config.notifier_vus, clients))
    url = target.notifier_url.replace("http://", "ws://")
    env = {
        "BENCH_WS_URL": f"{url}/ws/leaderboards/{target.competition_id}?top=10",
        "BENCH_WS_CLIENTS": str(clients),
        "BENCH_WS_VUS": str(vus),
        "BENCH_WS_DIALS_PER_VU": str(max(1, config.notifier_dials_in_flight // vus)),
        "BENCH_WS_NEEDLES": orjson.dumps([f'"user_id":"{user}"' for user in users]).decode(),
    }
    await _wait_closed(http, target.notifier_url)
    run = LiveK6Run.launch(
        f"k6-notifier-{clients}", CLIENT_SCRIPT, env, work_dir, config.k6_memory_limit_mib
    )
    accepted_ms: list[float] = []
    try:
        await run.wait_for_api()
        connect_cpu_start, k6_connect_start = _cpu_s(notifier), run.cpu_s()
        await _wait_subscribed(run, clients, config.notifier_connect_timeout_s)
        connect_cpu_s = _cpu_s(notifier) - connect_cpu_start
        k6_connect_cpu_s = run.cpu_s() - k6_connect_start
        idle_started = time.monotonic()
        idle_cpu_start, k6_idle_start = _cpu_s(notifier), run.cpu_s()
        await asyncio.sleep(SETTLE_S)
        idle_s = time.monotonic() - idle_started
        idle_cpu_per_s = (_cpu_s(notifier) - idle_cpu_start) / idle_s
        k6_idle_per_s = (run.cpu_s() - k6_idle_start) / idle_s
        rss = notifier.memory_info().rss
        before = await scrape(target.metrics_urls)
        probe_cpu_start, k6_cpu_start = _cpu_s(notifier), run.cpu_s()
        probes_started = time.monotonic()
        for index, user in enumerate(users):
            accepted_ms.append(await _probe(http, target, user, value + index))
            await asyncio.sleep(config.notifier_probe_interval_s)
        await asyncio.sleep(DRAIN_S)
        window_end_ms = time.time() * 1000
        probe_s = time.monotonic() - probes_started
        probe_cpu_s = _cpu_s(notifier) - probe_cpu_start
        k6_cpu_s = run.cpu_s() - k6_cpu_start
        after = await scrape(target.metrics_urls)
    finally:
        await run.stop()
    subscribed, failed, connect_s = _connections_made(run)
    by_probe: dict[int, list[float]] = {index: [] for index in range(len(users))}
    for sample in run.samples("bench_ws_frame_at_ms"):
        probe = int(sample.tags["probe"])
        by_probe[probe].append(sample.value - accepted_ms[probe])
    latencies = [latency for times in by_probe.values() for latency in times]
    frames = len(latencies)
    # a client that never showed a probe counts as late as the window let it be (at least
    # that late), so that missed frames raise the percentiles instead of leaving them out
    for probe, times in by_probe.items():
        latencies += [window_end_ms - accepted_ms[probe]] * max(subscribed - len(times), 0)
    return {
        "clients": subscribed,
        "failed": failed,
        "connect_s": round(connect_s, 2),
        "connect_cpu_us_per_connection": round(connect_cpu_s / max(subscribed, 1) * 1e6, 1),
        "k6_connect_cpu_us_per_connection": round(k6_connect_cpu_s / max(subscribed, 1) * 1e6, 1),
        "rss_mb": round(rss / 2**20, 1),
        "bytes_per_connection": round((rss - baseline_rss) / max(subscribed, 1)),
        "missed": subscribed * len(users) - frames,  # in the percentiles as the window's end
        **latency_summary(latencies),
        "idle_cpu_percent": round(idle_cpu_per_s * 100, 1),
        "cpu_us_per_frame": round(
            max(probe_cpu_s - idle_cpu_per_s * probe_s, 0.0) / max(frames, 1) * 1e6, 1
        ),
        "k6_cpu_us_per_frame": round(
            max(k6_cpu_s - k6_idle_per_s * probe_s, 0.0) / max(frames, 1) * 1e6, 1
        ),
        "probes": _per_probe(by_probe),
        "stages": stage_deltas(before, after),
    }


async def run_notifier_phase(
    target: NotifierTarget, work_dir: Path, config: BenchConfig
) -> dict[str, Any]:
    """Each level of ``config.notifier_levels`` in turn (a fresh set of clients each)."""
    baseline_rss = psutil.Process(target.notifier_pid).memory_info().rss
    levels: dict[str, Any] = {}
    value = 1e12
    async with httpx.AsyncClient(timeout=10.0) as http:
        await _warm_up(http, target, value)
        for clients in config.notifier_levels:
            levels[str(clients)] = await _level(
                http, target, clients, value, baseline_rss, work_dir, config
            )
            value += config.notifier_probes
    return {"baseline_rss_mb": round(baseline_rss / 2**20, 1), "client": "k6", "levels": levels}
