"""Where a score's freshness goes: the services' latency histograms, scraped around a phase.

Each service exports its stage histograms on ``/metrics`` (ingest's request and produce time,
the ranker's event age and batch time, the query service's change lag, the notifier's change
age at the frame). A phase scrapes every service before and after and keeps, per series, the
difference: how many observations the phase added, their mean, and p50/p99 estimated from the
buckets the way Prometheus' ``histogram_quantile`` does (linear inside a bucket, so only as
fine as the bucket bounds: 5, 10, 25, 50, 100 ms ...).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

# series of no stage: the scrapes themselves and the probes' health checks
_IGNORED_ROUTES = frozenset({"/metrics", "/health/live", "/health/ready"})


@dataclass(frozen=True, slots=True)
class Histogram:
    """One histogram series at one scrape: cumulative bucket counts, count and sum."""

    buckets: tuple[tuple[float, float], ...]
    count: float
    sum_s: float


Scrape = dict[str, Histogram]
"""``"<service> <metric>{labels}"`` → histogram, for every ``podium_*_seconds`` histogram."""


def parse_histograms(service: str, text: str) -> Scrape:
    """The ``podium_*_seconds`` histograms of one ``/metrics`` text."""
    series: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram" or not family.name.startswith("podium_"):
            continue
        if not family.name.endswith("_seconds"):
            continue
        for sample in family.samples:
            labels = {key: value for key, value in sample.labels.items() if key != "le"}
            if labels.get("route") in _IGNORED_ROUTES:
                continue
            label_text = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
            key = f"{service} {family.name}" + (f"{{{label_text}}}" if label_text else "")
            entry = series.setdefault(key, {"buckets": [], "count": 0.0, "sum": 0.0})
            if sample.name.endswith("_bucket"):
                entry["buckets"].append((float(sample.labels["le"]), float(sample.value)))
            elif sample.name.endswith("_count"):
                entry["count"] = float(sample.value)
            elif sample.name.endswith("_sum"):
                entry["sum"] = float(sample.value)
    return {
        key: Histogram(tuple(sorted(entry["buckets"])), entry["count"], entry["sum"])
        for key, entry in series.items()
    }


async def scrape(metrics_urls: dict[str, str]) -> Scrape:
    """Every service's histograms now (a service that does not answer is left out)."""

    async def one(http: httpx.AsyncClient, service: str, url: str) -> Scrape:
        try:
            response = await http.get(f"{url}/metrics")
        except httpx.HTTPError:
            return {}
        return parse_histograms(service, response.text) if response.status_code == 200 else {}

    async with httpx.AsyncClient(timeout=5.0) as http:
        parts = await asyncio.gather(
            *(one(http, service, url) for service, url in metrics_urls.items())
        )
    return {key: value for part in parts for key, value in part.items()}


def _quantile(buckets: list[tuple[float, float]], count: float, fraction: float) -> float:
    """``histogram_quantile``: the bucket holding the rank, linear inside it (seconds)."""
    rank = fraction * count
    lower_bound, lower_count = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if math.isinf(bound):
                return lower_bound  # above the last finite bound: say that bound
            inside = cumulative - lower_count
            share = (rank - lower_count) / inside if inside else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, cumulative
    return lower_bound


def stage_deltas(before: Scrape, after: Scrape) -> dict[str, dict[str, float]]:
    """Per series observed during the phase: count, mean, p50 and p99 (ms)."""
    stages: dict[str, dict[str, float]] = {}
    for key, end in sorted(after.items()):
        start = before.get(key)
        start_counts = dict(start.buckets) if start else {}
        count = end.count - (start.count if start else 0.0)
        if count <= 0:
            continue
        sum_s = end.sum_s - (start.sum_s if start else 0.0)
        buckets = [
            (bound, cumulative - start_counts.get(bound, 0.0)) for bound, cumulative in end.buckets
        ]
        stages[key] = {
            "count": count,
            "mean_ms": round(sum_s / count * 1000, 2),
            "p50_ms": round(_quantile(buckets, count, 0.50) * 1000, 2),
            "p99_ms": round(_quantile(buckets, count, 0.99) * 1000, 2),
        }
    return stages
