"""The write load: score events for every operator, retried with the same event_id until 202.

The load is open-loop: events are *offered* on a fixed schedule whatever the platform does,
and each is retried until accepted. What keeps that from collapsing under its own retries
(issue #16: thousands of retry tasks queued inside one httpx pool, whose request assignment is
quadratic in queued requests, starved the client for minutes; the client is aiohttp now,
soak/http.py says why) is a window: at most
``max_in_flight`` requests are inside the HTTP client at once — never more than its pool —
and a failed attempt waits an exponential back-off with jitter outside the window. Per second
the load records how many events were offered, sent (first attempt started) and accepted;
when the window holds events back for longer than a second the report says the client fell
behind its schedule instead of silently offering less.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from soak.http import HTTP_ERRORS, SoakClient

logger = logging.getLogger(__name__)

RETRY_FIRST_PAUSE_S = 0.1
RETRY_MAX_PAUSE_S = 2.0
DEFAULT_MAX_IN_FLIGHT = 64
DEFAULT_MAX_BATCH_EVENTS = 1000  # ingest's PODIUM_INGEST_BATCH_MAX_EVENTS default
BEHIND_AFTER_S = 1.0  # an event waiting this long for its first send means the client lags


@dataclass(frozen=True, slots=True)
class CompetitionPlan:
    """A competition the soak creates and how its values are drawn."""

    id: str
    sort_order: str
    operator: str
    reset: str = "none"
    teams: str | None = None
    """The team aggregate (a team board), or None."""

    def body(self) -> dict[str, Any]:
        """The create request."""
        body: dict[str, Any] = {
            "id": self.id,
            "name": f"soak {self.id}",
            "sort_order": self.sort_order,
            "operator": self.operator,
            "reset": self.reset,
        }
        if self.teams is not None:
            body["teams"] = {"aggregate": self.teams}
        return body

    def draw_value(self, rng: random.Random) -> float:
        """A value for one event: whole steps for sums, arbitrary floats otherwise."""
        if self.operator == "sum":
            return float(rng.randint(1, 10))
        return round(rng.uniform(0, 10_000), 3)


COMPETITIONS = [
    CompetitionPlan("soak-best-desc", "desc", "best"),
    CompetitionPlan("soak-best-asc", "asc", "best"),
    CompetitionPlan("soak-latest", "desc", "latest", "daily"),
    CompetitionPlan("soak-sum", "desc", "sum", "weekly"),
    CompetitionPlan("soak-teams", "desc", "best", "daily", teams="sum"),
]
TEAMS = 5
"""Teams of a team competition: user ``u<i>`` is always in team ``t<i % TEAMS>`` (two
replicas accept a user's events in no fixed order, and a move follows the topic's order, so
the soak keeps teams fixed; tests/e2e/test_ranker_*.py move users)."""


@dataclass(slots=True)
class RequestRecord:
    """One HTTP request the soak made."""

    kind: str
    started: float
    latency_s: float
    status: int  # 0 = no answer (timeout, connection refused)


@dataclass
class LoadStats:
    """What the write load offered, what was accepted, and every request's outcome."""

    offered: int = 0
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    retries: int = 0
    requests: list[RequestRecord] = field(default_factory=list)
    # per whole second since the load started: events offered, sent (first attempt), accepted
    offered_per_s: dict[int, int] = field(default_factory=dict)
    sent_per_s: dict[int, int] = field(default_factory=dict)
    accepted_per_s: dict[int, int] = field(default_factory=dict)
    behind_s: set[int] = field(default_factory=set)  # seconds in which a send lagged > 1 s
    max_in_flight_seen: int = 0

    def count(self, series: dict[int, int], second: int, events: int) -> None:
        """Add ``events`` to ``series`` at ``second``."""
        series[second] = series.get(second, 0) + events

    def rates(self) -> list[dict[str, int]]:
        """One row per second: offered, sent, accepted."""
        last = max([0, *self.offered_per_s, *self.sent_per_s, *self.accepted_per_s])
        return [
            {
                "second": second,
                "offered": self.offered_per_s.get(second, 0),
                "sent": self.sent_per_s.get(second, 0),
                "accepted": self.accepted_per_s.get(second, 0),
            }
            for second in range(last + 1)
        ]


class WriteLoad:
    """Posts events at a steady rate across ingest replicas; retries until each is accepted.

    A request without an answer (timeout, killed replica) is retried on another replica with
    the same event_id: the ranker's dedup makes that safe, and it is exactly the behaviour the
    soak has to prove.
    """

    def __init__(
        self,
        ingest_urls: list[str],
        token: str,
        rate_eps: float,
        users_per_competition: int,
        seed: int,
        batch_share: float = 0.3,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS,
    ) -> None:
        self.ingest_urls = ingest_urls
        self.headers = {"Authorization": f"Bearer {token}"}
        self.rate_eps = rate_eps
        self.users = users_per_competition
        self.rng = random.Random(seed)  # noqa: S311 - load shape, not security
        self.batch_share = batch_share
        self.max_batch_events = max_batch_events
        self.stats = LoadStats()
        self._ids = itertools.count()
        self._in_flight: set[asyncio.Task[None]] = set()
        self.max_in_flight = max_in_flight
        self._window = asyncio.Semaphore(max_in_flight)
        self._requests_in_flight = 0
        self._started = time.monotonic()

    def _event(self) -> dict[str, Any]:
        plan = self.rng.choice(COMPETITIONS)
        user = self.rng.randrange(self.users)
        event = {
            "event_id": f"soak-{next(self._ids)}",
            "competition_id": plan.id,
            "user_id": f"u{user}",
            "value": plan.draw_value(self.rng),
            "ts": datetime.now(UTC).isoformat(),
        }
        if plan.teams is not None:
            event["team_id"] = f"t{user % TEAMS}"
        return event

    async def run(self, client: SoakClient, duration_s: float) -> None:
        """Offer ``rate_eps`` events/s for ``duration_s``, then wait for every retry to land."""
        started = self._started = time.monotonic()
        tick_s = 0.05
        while (elapsed := time.monotonic() - started) < duration_s:
            # what is owed follows the clock, so a slow tick does not lower the offered rate
            count = int(elapsed * self.rate_eps) - self.stats.offered
            if count > 0:
                self._launch(client, [self._event() for _ in range(count)])
            await asyncio.sleep(tick_s)
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    def _second(self) -> int:
        return int(time.monotonic() - self._started)

    def _launch(self, client: SoakClient, events: list[dict[str, Any]]) -> None:
        self.stats.offered += len(events)
        self.stats.count(self.stats.offered_per_s, self._second(), len(events))
        if len(events) > 1 and self.rng.random() < self.batch_share:
            # never more than ingest accepts in one batch: a tick that catches up after a stall
            # owes thousands of events (a 30-minute run at 2,000/s had 71,537 refused with 422)
            size = self.max_batch_events
            groups = [events[start : start + size] for start in range(0, len(events), size)]
        else:
            groups = [[event] for event in events]
        for group in groups:
            task = asyncio.create_task(self._deliver(client, group))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def _deliver(self, client: SoakClient, events: list[dict[str, Any]]) -> None:
        pending = list(events)
        replica = self.rng.randrange(len(self.ingest_urls))
        offered_at = time.monotonic()
        attempt = 0
        while pending:
            base = self.ingest_urls[replica % len(self.ingest_urls)]
            async with self._window:
                if attempt == 0:
                    self.stats.count(self.stats.sent_per_s, self._second(), len(pending))
                    if time.monotonic() - offered_at > BEHIND_AFTER_S:
                        self.stats.behind_s.add(self._second())
                self._requests_in_flight += 1
                self.stats.max_in_flight_seen = max(
                    self.stats.max_in_flight_seen, self._requests_in_flight
                )
                try:
                    pending = await self._post(client, base, pending)
                finally:
                    self._requests_in_flight -= 1
            if pending:
                self.stats.retries += len(pending)
                replica += 1  # the next attempt goes to another replica
                pause_s = min(RETRY_MAX_PAUSE_S, RETRY_FIRST_PAUSE_S * 2 ** min(attempt, 10))
                attempt += 1
                # jitter: retries of one outage spread out instead of arriving in waves
                await asyncio.sleep(pause_s * (0.5 + self.rng.random() / 2))

    async def _post(
        self, client: SoakClient, base: str, events: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """One attempt; returns the events still to deliver."""
        single = len(events) == 1
        started = time.monotonic()
        try:
            if single:
                response = await client.post(
                    f"{base}/api/v1/scores", json=events[0], headers=self.headers
                )
            else:
                response = await client.post(
                    f"{base}/api/v1/scores/batch", json={"events": events}, headers=self.headers
                )
        except HTTP_ERRORS:
            self.stats.requests.append(
                RequestRecord("write", started, time.monotonic() - started, 0)
            )
            return events
        self.stats.requests.append(
            RequestRecord("write", started, time.monotonic() - started, response.status_code)
        )
        if response.status_code == 429 or response.status_code >= 500:
            return events
        if single:
            if response.status_code == 202:
                self._accept(events[0])
            else:
                self.stats.rejected[events[0]["event_id"]] = response.text[:200]
            return []
        if response.status_code != 202:
            for event in events:
                self.stats.rejected[event["event_id"]] = response.text[:200]
            return []
        return self._sort_batch_results(events, response.json())

    def _accept(self, event: dict[str, Any]) -> None:
        if event["event_id"] not in self.stats.accepted:
            self.stats.count(self.stats.accepted_per_s, self._second(), 1)
        self.stats.accepted[event["event_id"]] = event

    def _sort_batch_results(
        self, events: list[dict[str, Any]], body: dict[str, Any]
    ) -> list[dict[str, Any]]:
        by_id = {event["event_id"]: event for event in events}
        retry = []
        for result in body.get("results", []):
            event = by_id.get(result.get("event_id"))
            if event is None:
                continue
            if result.get("status") == "accepted":
                self._accept(event)
            elif result.get("retriable"):
                retry.append(event)
            else:
                self.stats.rejected[event["event_id"]] = str(result)[:200]
        return retry
