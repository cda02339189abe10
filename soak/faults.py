"""Faults injected on a schedule, and how long the platform takes to recover from each."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from soak.http import HTTP_ERRORS, SoakClient
from soak.platform import Platform

logger = logging.getLogger(__name__)

PROBE_COMPETITION = "soak-probe"
RESTART_PAUSE_S = 1.0
RECOVERY_TIMEOUT_S = 120.0
BROKER_STALL_S = 10.0
ANSWER_MARGIN_S = 5.0
"""How much later than the broker timeout ingest may answer during a broker stall."""
SURVIVOR_READ_PAUSE_S = 0.05


@dataclass
class FaultRecord:
    """One injected fault: when, and when the platform worked end to end again."""

    name: str
    at_s: float
    recovered_s: float | None = None
    detail: str = ""
    broken: str = ""
    """The guarantee this fault must keep, when it did not (empty: kept)."""

    def window(self) -> tuple[float, float]:
        """The time range (monotonic offsets from the run's start) counted as 'in fault'."""
        end = self.at_s + (self.recovered_s if self.recovered_s is not None else RECOVERY_TIMEOUT_S)
        return self.at_s, end


def probe_event(event_id: str, user_id: str, value: float) -> dict[str, Any]:
    """A score event on the probe competition (outside what the oracle checks), stamped now."""
    return {
        "event_id": event_id,
        "competition_id": PROBE_COMPETITION,
        "user_id": user_id,
        "value": value,
        "ts": datetime.now(UTC).isoformat(),
    }


async def probe_visible(client: SoakClient, query_url: str, user_id: str, value: float) -> bool:
    """Whether the query API shows ``value`` as the probe user's score now (False: no answer)."""
    try:
        response = await client.get(
            f"{query_url}/api/v1/leaderboards/{PROBE_COMPETITION}/users/{user_id}"
        )
        return response.status_code == 200 and response.json().get("score") == value
    except HTTP_ERRORS:
        return False
    except ValueError:  # not JSON
        return False


class EndToEndProbe:
    """Posts a probe score and waits until the query API shows it: end-to-end health."""

    def __init__(self, platform: Platform, token: str) -> None:
        self.platform = platform
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}
        self._values = itertools.count(1)

    async def wait_healthy(self, client: SoakClient, timeout_s: float = RECOVERY_TIMEOUT_S) -> None:
        """Return once a fresh probe event is visible through query; raise on timeout."""
        deadline = time.monotonic() + timeout_s
        value = float(next(self._values))
        event = probe_event(f"probe-{int(value)}", "probe", value)
        posted = False
        replicas = itertools.cycle(["ingest-a", "ingest-b"])
        while time.monotonic() < deadline:
            if not posted:
                try:
                    response = await client.post(
                        f"{self.platform.url(next(replicas))}/api/v1/scores",
                        json=event,
                        headers=self.headers,
                    )
                    posted = response.status_code == 202
                except HTTP_ERRORS:
                    pass
            elif await probe_visible(client, self.platform.url("query"), "probe", value):
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"probe {value} not visible after {timeout_s:.0f} s")


FaultAction = Callable[[SoakClient], Awaitable[tuple[str, str]]]
"""Injects one fault; returns what it did and the guarantee it saw broken ("" if kept)."""


def fault_actions(platform: Platform, write_token: str) -> list[tuple[str, FaultAction]]:
    """The faults, in the order the schedule injects them."""

    async def kill_and_restart(name: str, *, wait_ready: bool) -> str:
        platform.kill_process(name)
        await asyncio.sleep(RESTART_PAUSE_S)
        platform.start_process(name)
        if wait_ready:
            await platform.wait_ready(name)
        return f"SIGKILL {name}, restarted"

    async def kill_ranker(_: SoakClient) -> tuple[str, str]:
        # no readiness wait: the other ranker takes over while this one rejoins the group
        return await kill_and_restart("ranker-a", wait_ready=False), ""

    async def kill_ingest(_: SoakClient) -> tuple[str, str]:
        return await kill_and_restart("ingest-a", wait_ready=True) + " (mid-request)", ""

    async def stall_broker(client: SoakClient) -> tuple[str, str]:
        # while the broker answers nothing, ingest must answer (503) within its broker
        # timeout and never 202: an event it cannot have had acknowledged is not accepted
        platform.stall_broker()
        try:
            answer = await _post_during_stall(client, platform, write_token)
            await asyncio.sleep(max(0.0, BROKER_STALL_S - answer.elapsed_s))
        finally:
            platform.resume_broker()
        broken = ""
        limit_s = platform.settings.kafka_request_timeout_s + ANSWER_MARGIN_S
        if answer.status == 202:
            broken = "ingest answered 202 for an event the stalled broker cannot have acknowledged"
        elif answer.status == 0 or answer.elapsed_s > limit_s:
            broken = f"ingest did not answer within {limit_s:g} s while the broker was stalled"
        return (
            f"SIGSTOP broker for {BROKER_STALL_S:g} s, SIGCONT; a write meanwhile got"
            f" {answer.status or 'no answer'} after {answer.elapsed_s:.1f} s",
            broken,
        )

    async def restart_redis(_: SoakClient) -> tuple[str, str]:
        platform.restart_redis()
        return "Redis killed and restarted empty", ""

    async def restore_redis_snapshot(_: SoakClient) -> tuple[str, str]:
        # the snapshot was saved when the schedule began: every board it holds is older
        age_s = platform.restart_redis_from_snapshot()
        return f"Redis killed and restarted from a snapshot saved {age_s:.0f} s earlier", ""

    async def kill_redis_master(_: SoakClient) -> tuple[str, str]:
        # the competition whose board the oracle checks most closely (sums count every event)
        return await asyncio.to_thread(platform.kill_redis_master, "soak-sum"), ""

    async def terminate_postgres(_: SoakClient) -> tuple[str, str]:
        count = await platform.terminate_postgres_connections()
        return f"pg_terminate_backend on {count} Podium connections", ""

    async def crash_postgres(_: SoakClient) -> tuple[str, str]:
        await asyncio.to_thread(platform.crash_postgres)
        return "SIGKILL PostgreSQL (postmaster and backends), restarted with crash recovery", ""

    async def kill_query(client: SoakClient) -> tuple[str, str]:
        # under read load, the other replica keeps answering while this one is down
        stop = asyncio.Event()
        survivor = asyncio.create_task(_read_until(client, platform.url("query-b"), stop))
        try:
            detail = await kill_and_restart("query", wait_ready=True)
        finally:
            stop.set()
        answered, asked = await survivor
        broken = "" if answered == asked else f"query-b failed {asked - answered} of {asked} reads"
        return f"{detail}; query-b answered {answered} of {asked} reads meanwhile", broken

    async def kill_notifier(_: SoakClient) -> tuple[str, str]:
        return await kill_and_restart("notifier", wait_ready=True), ""

    # a single Redis is restarted empty and from an older snapshot; a cluster loses a master
    redis_faults: list[tuple[str, FaultAction]] = (
        [("redis_master_kill", kill_redis_master)]
        if platform.settings.redis_cluster
        else [("redis_restart", restart_redis), ("redis_snapshot_restore", restore_redis_snapshot)]
    )
    return [
        ("ranker_kill", kill_ranker),
        ("ingest_kill", kill_ingest),
        ("broker_stall", stall_broker),
        *redis_faults,
        ("postgres_terminate", terminate_postgres),
        ("postgres_crash", crash_postgres),
        ("query_kill", kill_query),
        ("notifier_kill", kill_notifier),
    ]


@dataclass(frozen=True)
class Answer:
    """One request's outcome: its status (0: none) and how long it took."""

    status: int
    elapsed_s: float


async def _post_during_stall(client: SoakClient, platform: Platform, write_token: str) -> Answer:
    """One write to ingest while the broker is stalled (a probe event of its own)."""
    started = time.monotonic()
    event = probe_event(f"stall-{uuid.uuid4().hex}", "stall-probe", 1.0)
    timeout_s = platform.settings.kafka_request_timeout_s + 2 * ANSWER_MARGIN_S
    try:
        response = await client.post(
            f"{platform.url('ingest-b')}/api/v1/scores",
            json=event,
            headers={"Authorization": f"Bearer {write_token}"},
            timeout_s=timeout_s,
        )
        status = response.status_code
    except HTTP_ERRORS:
        status = 0
    return Answer(status, time.monotonic() - started)


async def _read_until(client: SoakClient, base_url: str, stop: asyncio.Event) -> tuple[int, int]:
    """Read the probe's rank from ``base_url`` until ``stop``; (answered 200, asked)."""
    answered = asked = 0
    while not stop.is_set():
        asked += 1
        with contextlib.suppress(*HTTP_ERRORS):
            response = await client.get(f"{base_url}/api/v1/leaderboards/{PROBE_COMPETITION}/top")
            answered += response.status_code == 200
        await asyncio.sleep(SURVIVOR_READ_PAUSE_S)
    return answered, asked


async def run_schedule(
    platform: Platform,
    probe: EndToEndProbe,
    client: SoakClient,
    duration_s: float,
    run_started: float,
    records: list[FaultRecord],
) -> list[FaultRecord]:
    """Inject every fault at evenly spaced times during the run; measure each recovery.

    A single Redis saves a snapshot first, which ``redis_snapshot_restore`` later restarts
    Redis from (a cluster has ``redis_master_kill`` instead).
    Each fault is appended to ``records`` as it starts (an interrupted run reports those).
    """
    if not platform.settings.redis_cluster:
        await platform.save_redis_snapshot()
    actions = fault_actions(platform, probe.token)
    spacing = duration_s / (len(actions) + 1)
    for index, (name, action) in enumerate(actions, start=1):
        delay = run_started + spacing * index - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        record = FaultRecord(name=name, at_s=time.monotonic() - run_started)
        records.append(record)
        logger.info("fault %s", name)
        record.detail, record.broken = await action(client)
        try:
            await probe.wait_healthy(client)
            record.recovered_s = time.monotonic() - run_started - record.at_s
        except TimeoutError as error:
            record.detail += f"; not recovered: {error}"
    return records
