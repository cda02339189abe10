"""End-to-end freshness: from an event's 202 to its score in the query API, under load.

A steady background load (small batches every 50 ms) plus sampled single-event probes make
up the offered rate; each probe is a new user, polled in the query API until it is ranked.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import httpx

from bench.config import BenchConfig
from bench.measure import latency_summary
from bench.workload import competition_id

TICK_S = 0.05
POLL_S = 0.005
PROBE_TIMEOUT_S = 10.0
WARMUP_TIMEOUT_S = 60.0


async def _background(
    client: httpx.AsyncClient,
    ingest_url: str,
    token: str,
    rate_eps: float,
    until: float,
    competitions: int,
    tag: str,
) -> dict[str, int]:
    per_tick = max(1, round(rate_eps * TICK_S))
    counter = itertools.count()
    sent = {"events": 0, "errors": 0}
    pending: set[asyncio.Task[None]] = set()

    async def post(events: list[dict[str, Any]]) -> None:
        response = await client.post(
            f"{ingest_url}/api/v1/scores/batch",
            json={"events": events},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code == 202:
            sent["events"] += len(events)
        else:
            sent["errors"] += 1

    next_tick = time.monotonic()
    while next_tick < until:
        events = []
        for _ in range(per_tick):
            index = next(counter)
            events.append(
                {
                    "event_id": f"{tag}-bg-{index}",
                    "competition_id": competition_id(index % competitions),
                    "user_id": f"bg{index % 5000}",
                    "value": float(index),
                }
            )
        task = asyncio.create_task(post(events))
        pending.add(task)
        task.add_done_callback(pending.discard)
        next_tick += TICK_S
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    if pending:
        await asyncio.gather(*pending)
    return sent


async def _probe(
    client: httpx.AsyncClient,
    ingest_url: str,
    query_url: str,
    token: str,
    index: int,
    competitions: int,
    tag: str,
    timeout_s: float = PROBE_TIMEOUT_S,
) -> float | None:
    cid = competition_id(index % competitions)
    uid = f"{tag}-probe-{index}"
    response = await client.post(
        f"{ingest_url}/api/v1/scores",
        json={"event_id": uid, "competition_id": cid, "user_id": uid, "value": 1.0},
        headers={"Authorization": f"Bearer {token}"},
    )
    if response.status_code != 202:
        return None
    accepted = time.monotonic()
    url = f"{query_url}/api/v1/leaderboards/{cid}/users/{uid}"
    while time.monotonic() - accepted < timeout_s:
        if (await client.get(url)).status_code == 200:
            return (time.monotonic() - accepted) * 1000
        await asyncio.sleep(POLL_S)
    return None


async def run_freshness(
    ingest_url: str, query_url: str, token: str, tag: str, config: BenchConfig
) -> dict[str, Any]:
    """Offer ``freshness_rate_eps`` for ``freshness_duration_s``; freshness of the probes."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        # the pipeline is live (ranker joined its group) once one probe made it through
        warm = await _probe(
            client, ingest_url, query_url, token, -1, config.competitions, tag, WARMUP_TIMEOUT_S
        )
        if warm is None:
            raise RuntimeError("no event reached the query API: the live ranker is not running")
        started = time.monotonic()
        until = started + config.freshness_duration_s
        probe_rate = config.freshness_probes_per_s
        background = asyncio.create_task(
            _background(
                client,
                ingest_url,
                token,
                config.freshness_rate_eps - probe_rate,
                until,
                config.competitions,
                tag,
            )
        )
        probes: list[asyncio.Task[float | None]] = []
        for index in itertools.count():
            at = started + index / probe_rate
            if at >= until:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            probes.append(
                asyncio.create_task(
                    _probe(client, ingest_url, query_url, token, index, config.competitions, tag)
                )
            )
        sent = await background
        latencies = await asyncio.gather(*probes)
        elapsed = time.monotonic() - started
    seen = [latency for latency in latencies if latency is not None]
    return {
        "offered_eps": config.freshness_rate_eps,
        "achieved_eps": round((sent["events"] + len(probes)) / elapsed, 1),
        "background_errors": sent["errors"],
        "probes": len(probes),
        "probes_unseen": len(probes) - len(seen),
        **latency_summary(seen),
    }
