"""Per-second figures of a soak run: the load, ingest p99, ranker lag and freshness.

The report's totals say whether a run kept its guarantees; the timeline says what the faults
did to the platform while it ran (the plots in docs/ are drawn from it). Two of its series
are sampled here, once a second, next to the load: the ranker's consumer lag (the largest
``podium_ranker_consumer_lag_records`` over both rankers' partitions, read from their
/metrics), freshness (a probe score posted every second, and the time until the query API
shows it) and the broker's CPU (the dev broker, tansu, saturating starved the rankers in the
30-minute soak: they fetched slowly while nothing in Podium was busy). The rest comes from what
the load generator recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from soak.faults import probe_event, probe_visible
from soak.http import HTTP_ERRORS, SoakClient
from soak.load import LoadStats
from soak.platform import Platform
from soak.report import percentile_ms

SAMPLE_EVERY_S = 1.0
FRESHNESS_POLL_S = 0.02
FRESHNESS_TIMEOUT_S = 10.0
FRESHNESS_USER = "freshness-probe"
RANKERS = ("ranker-a", "ranker-b")
LAG_METRIC = "podium_ranker_consumer_lag_records"
RECORDS_METRIC = "podium_ranker_fetched_records_total"
BROKER_WINDOW_S = 60
"""The broker summary compares its CPU in the first and the last this many seconds of load."""
BROKER_SATURATED_PERCENT = 90.0
BROKER_GROWTH_FACTOR = 3.0


@dataclass
class Timeline:
    """Samples ranker lag and freshness once a second while the run lasts."""

    platform: Platform
    token: str
    run_started: float
    lag_records: dict[int, float] = field(default_factory=dict)
    freshness_ms: dict[int, float | None] = field(default_factory=dict)
    broker_cpu_percent: dict[int, float] = field(default_factory=dict)
    ranker_records: RecordCounts = field(default_factory=lambda: RecordCounts())

    async def run(self, client: SoakClient, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set (lag and freshness side by side)."""
        await asyncio.gather(self._sample_lag(client, stop), self._probe_freshness(client, stop))

    def _second(self) -> int:
        return int(time.monotonic() - self.run_started)

    async def _sample_lag(self, client: SoakClient, stop: asyncio.Event) -> None:
        broker_cpu = BrokerCpu(self.platform)
        while not stop.is_set():
            second = self._second()
            percent = broker_cpu.percent()
            if percent is not None:
                self.broker_cpu_percent[second] = percent
            largest: float | None = None
            for name in RANKERS:
                samples = await _metric_samples(client, self.platform.url(name))
                lags = [value for metric, _, value in samples if metric == LAG_METRIC]
                if lags:
                    largest = max(lags) if largest is None else max(largest, *lags)
                outcomes = {
                    labels.get("outcome", ""): value
                    for metric, labels, value in samples
                    if metric == RECORDS_METRIC
                }
                if outcomes:
                    self.ranker_records.observe(name, outcomes)
            if largest is not None:
                self.lag_records[second] = largest
            await _pause(stop, SAMPLE_EVERY_S)

    async def _probe_freshness(self, client: SoakClient, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        replicas = itertools.cycle(["ingest-a", "ingest-b"])
        for value in itertools.count(1):
            if stop.is_set():
                return
            started = time.monotonic()
            second = self._second()
            event = probe_event(
                f"fresh-{self.run_started:.0f}-{value}", FRESHNESS_USER, float(value)
            )
            with contextlib.suppress(*HTTP_ERRORS):
                response = await client.post(
                    f"{self.platform.url(next(replicas))}/api/v1/scores",
                    json=event,
                    headers=headers,
                )
                if response.status_code == 202:
                    accepted = time.monotonic()
                    visible = await self._visible(client, float(value), stop)
                    self.freshness_ms[second] = (
                        None if visible is None else round((visible - accepted) * 1000, 1)
                    )
            await _pause(stop, max(0.0, SAMPLE_EVERY_S - (time.monotonic() - started)))

    async def _visible(self, client: SoakClient, value: float, stop: asyncio.Event) -> float | None:
        """When the query API first showed ``value`` for the probe user (None: not in time)."""
        deadline = time.monotonic() + FRESHNESS_TIMEOUT_S
        query_url = self.platform.url("query")
        while time.monotonic() < deadline and not stop.is_set():
            if await probe_visible(client, query_url, FRESHNESS_USER, value):
                return time.monotonic()
            await asyncio.sleep(FRESHNESS_POLL_S)
        return None


class BrokerCpu:
    """The broker process's CPU use since the previous reading, in percent of one core."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._process: psutil.Process | None = None

    def percent(self) -> float | None:
        """None on the first reading of a (re)started broker, or when there is none."""
        broker = self._platform.broker
        try:
            if broker is None:
                return None
            if self._process is None or self._process.pid != broker.process.pid:
                self._process = psutil.Process(broker.process.pid)
                self._process.cpu_percent()  # the baseline for the next reading
                return None
            return round(float(self._process.cpu_percent()), 1)
        except psutil.Error:
            self._process = None
            return None


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _metric_samples(
    client: SoakClient, base_url: str
) -> list[tuple[str, dict[str, str], float]]:
    """Every sample of a Prometheus text page as (name, labels, value); none when the
    process does not answer (killed, restarting)."""
    try:
        response = await client.get(f"{base_url}/metrics", timeout_s=1.0)
    except HTTP_ERRORS:
        return []
    if response.status_code != 200:
        return []
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


class RecordCounts:
    """The records the rankers fetched over the whole run, by outcome (accepted, or dropped:
    ``inactive_partition``, ``behind_read_offset``, ``rewound``, ``gap``), from each ranker's
    ``podium_ranker_fetched_records_total``, sampled once a second. A counter starts again
    with its process (a fault restarts rankers): a value lower than the last one read means
    a restart, and the last one is carried over. What a process counted after its last
    sample before it died is not seen, so the totals are a floor; a lost event's report
    says whether the rankers dropped records at all."""

    def __init__(self) -> None:
        self._carried: dict[str, float] = {}
        self._last: dict[str, dict[str, float]] = {}

    def observe(self, ranker: str, counts: dict[str, float]) -> None:
        """Take one reading of ``ranker``'s counters (outcome -> value)."""
        last = self._last.get(ranker, {})
        if any(counts.get(outcome, 0.0) < value for outcome, value in last.items()):
            for outcome, value in last.items():
                self._carried[outcome] = self._carried.get(outcome, 0.0) + value
        self._last[ranker] = dict(counts)

    def totals(self) -> dict[str, int]:
        """Per outcome, everything counted so far over every ranker process."""
        totals = dict(self._carried)
        for counts in self._last.values():
            for outcome, value in counts.items():
                totals[outcome] = totals.get(outcome, 0.0) + value
        return {outcome: int(value) for outcome, value in sorted(totals.items())}


def timeline_rows(stats: LoadStats, timeline: Timeline | None) -> list[dict[str, Any]]:
    """One row per second of the run: offered, sent and accepted events, ingest write p99
    (of the requests started that second), the ranker's largest lag, freshness and the
    broker's CPU."""
    writes: dict[int, list[float]] = {}
    run_started = timeline.run_started if timeline is not None else 0.0
    for record in stats.requests:
        if record.kind == "write" and record.status:
            second = int(record.started - run_started)
            writes.setdefault(second, []).append(record.latency_s)
    rows = []
    for row in stats.rates():
        second = row["second"]
        rows.append(
            {
                **row,
                "write_p99_ms": percentile_ms(writes.get(second, []), 0.99),
                "ranker_lag_records": (
                    timeline.lag_records.get(second) if timeline is not None else None
                ),
                "freshness_ms": timeline.freshness_ms.get(second) if timeline is not None else None,
                "broker_cpu_percent": (
                    timeline.broker_cpu_percent.get(second) if timeline is not None else None
                ),
            }
        )
    return rows


def broker_summary(rows: list[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """The dev broker's CPU over the load: mean in the first and the last minute, the most,
    and whether it saturated. Saturated: the last minute of load averaged at least 90% of a
    core and at least three times the first minute, at the same offered rate. tansu's
    in-memory storage lists every stored batch of a partition on each fetch behind its high
    watermark (docs/soak.md, "The dev broker's limit"), so its CPU grows with the run's
    length; a report that failed with a saturated broker says so rather than blaming the
    rankers, which sat idle waiting on fetches."""
    load_end = int(duration_s)
    samples = {
        row["second"]: row["broker_cpu_percent"]
        for row in rows
        if row.get("broker_cpu_percent") is not None
    }

    def mean(first: int, last: int) -> float | None:
        values = [value for second, value in samples.items() if first <= second < last]
        return round(sum(values) / len(values), 1) if values else None

    first = mean(0, min(BROKER_WINDOW_S, load_end))
    last = mean(max(0, load_end - BROKER_WINDOW_S), load_end)
    saturated = (
        first is not None
        and last is not None
        and last >= BROKER_SATURATED_PERCENT
        and last >= BROKER_GROWTH_FACTOR * max(first, 1.0)
    )
    return {
        "cpu_percent_first_minute": first,
        "cpu_percent_last_minute_of_load": last,
        "cpu_percent_max": max(samples.values()) if samples else None,
        "saturated": saturated,
    }
