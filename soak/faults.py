"""Faults injected on a schedule, and how long the platform takes to recover from each."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from soak.platform import Platform

logger = logging.getLogger(__name__)

PROBE_COMPETITION = "soak-probe"
RESTART_PAUSE_S = 1.0
RECOVERY_TIMEOUT_S = 120.0


@dataclass
class FaultRecord:
    """One injected fault: when, and when the platform worked end to end again."""

    name: str
    at_s: float
    recovered_s: float | None = None
    detail: str = ""

    def window(self) -> tuple[float, float]:
        """The time range (monotonic offsets from the run's start) counted as 'in fault'."""
        end = self.at_s + (self.recovered_s if self.recovered_s is not None else RECOVERY_TIMEOUT_S)
        return self.at_s, end


class EndToEndProbe:
    """Posts a probe score and waits until the query API shows it: end-to-end health."""

    def __init__(self, platform: Platform, token: str) -> None:
        self.platform = platform
        self.headers = {"Authorization": f"Bearer {token}"}
        self._values = itertools.count(1)

    async def wait_healthy(
        self, client: httpx.AsyncClient, timeout_s: float = RECOVERY_TIMEOUT_S
    ) -> None:
        """Return once a fresh probe event is visible through query; raise on timeout."""
        deadline = time.monotonic() + timeout_s
        value = float(next(self._values))
        event = {
            "event_id": f"probe-{int(value)}",
            "competition_id": PROBE_COMPETITION,
            "user_id": "probe",
            "value": value,
            "ts": datetime.now(UTC).isoformat(),
        }
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
                except httpx.HTTPError:
                    pass
            else:
                try:
                    response = await client.get(
                        f"{self.platform.url('query')}/api/v1/leaderboards/{PROBE_COMPETITION}/users/probe"
                    )
                    if response.status_code == 200 and response.json().get("score") == value:
                        return
                except httpx.HTTPError:
                    pass
            await asyncio.sleep(0.1)
        raise TimeoutError(f"probe {value} not visible after {timeout_s:.0f} s")


def fault_actions(platform: Platform) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
    """The faults, in the order the schedule injects them."""

    async def kill_and_restart(name: str, *, wait_ready: bool) -> str:
        platform.kill_process(name)
        await asyncio.sleep(RESTART_PAUSE_S)
        platform.start_process(name)
        if wait_ready:
            await platform.wait_ready(name)
        return f"SIGKILL {name}, restarted"

    async def kill_ranker() -> str:
        # no readiness wait: the other ranker takes over while this one rejoins the group
        return await kill_and_restart("ranker-a", wait_ready=False)

    async def kill_ingest() -> str:
        return await kill_and_restart("ingest-a", wait_ready=True) + " (mid-request)"

    async def restart_redis() -> str:
        platform.restart_redis()
        return "Redis killed and restarted empty"

    async def restore_redis_snapshot() -> str:
        # the snapshot was saved when the schedule began: every board it holds is older
        age_s = platform.restart_redis_from_snapshot()
        return f"Redis killed and restarted from a snapshot saved {age_s:.0f} s earlier"

    async def terminate_postgres() -> str:
        count = await platform.terminate_postgres_connections()
        return f"pg_terminate_backend on {count} Podium connections"

    async def kill_notifier() -> str:
        return await kill_and_restart("notifier", wait_ready=True)

    return [
        ("ranker_kill", kill_ranker),
        ("ingest_kill", kill_ingest),
        ("redis_restart", restart_redis),
        ("redis_snapshot_restore", restore_redis_snapshot),
        ("postgres_terminate", terminate_postgres),
        ("notifier_kill", kill_notifier),
    ]


async def run_schedule(
    platform: Platform,
    probe: EndToEndProbe,
    client: httpx.AsyncClient,
    duration_s: float,
    run_started: float,
) -> list[FaultRecord]:
    """Inject every fault at evenly spaced times during the run; measure each recovery.

    Redis saves a snapshot first, which ``redis_snapshot_restore`` later restarts Redis from.
    """
    await platform.save_redis_snapshot()
    actions = fault_actions(platform)
    spacing = duration_s / (len(actions) + 1)
    records = []
    for index, (name, action) in enumerate(actions, start=1):
        delay = run_started + spacing * index - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        record = FaultRecord(name=name, at_s=time.monotonic() - run_started)
        logger.info("fault %s", name)
        record.detail = await action()
        try:
            await probe.wait_healthy(client)
            record.recovered_s = time.monotonic() - run_started - record.at_s
        except TimeoutError as error:
            record.detail += f"; not recovered: {error}"
        records.append(record)
    return records
