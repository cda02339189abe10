"""Ratios against the same run's baselines, the targets, the printed table and the JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

RATIO_KEYS = (
    "query_top10_hot_vs_naive_get",
    "query_top10_hot_p99_vs_naive_get_p99",
    "query_top10_cold_vs_naive_get",
    "ingest_single_vs_naive_post",
    "ingest_batch_events_vs_naive_post",
    "ranker_vs_redis_zadd",
    "naive_post_vs_redis_zadd",
    "naive_get_vs_redis_zrevrange",
)


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` to three significant digits (0.0 when undefined).

    Significant digits, not decimals: the ranker against Redis' pipelined ZADD is ~0.001 and
    rounded to three decimals became 0.0 on a loaded machine.
    """
    if not denominator:
        return 0.0
    return float(f"{numerator / denominator:.3g}")


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    """Every ratio of a Podium figure to its baseline measured in the same run."""
    naive, redis = figures["naive"], figures["redis"]
    query, ingest = figures["query"], figures["ingest"]
    return {
        "query_top10_hot_vs_naive_get": _ratio(
            query["hot"]["top10"]["req_s"], naive["get"]["req_s"]
        ),
        "query_top10_hot_p99_vs_naive_get_p99": _ratio(
            query["hot"]["top10"]["p99_ms"], naive["get"]["p99_ms"]
        ),
        "query_top10_cold_vs_naive_get": _ratio(
            query["cold"]["top10"]["req_s"], naive["get"]["req_s"]
        ),
        "ingest_single_vs_naive_post": _ratio(ingest["single"]["req_s"], naive["post"]["req_s"]),
        "ingest_batch_events_vs_naive_post": _ratio(
            ingest["batch"]["events_s"], naive["post"]["req_s"]
        ),
        "ranker_vs_redis_zadd": _ratio(figures["ranker"]["events_s"], redis["zadd_ops_s"]),
        "naive_post_vs_redis_zadd": _ratio(naive["post"]["req_s"], redis["zadd_ops_s"]),
        "naive_get_vs_redis_zrevrange": _ratio(naive["get"]["req_s"], redis["zrevrange_ops_s"]),
    }


def targets(figures: dict[str, Any], ratio: dict[str, float]) -> list[dict[str, Any]]:
    """Each target of issue #8 with the measured value and whether it is met."""
    levels = figures["notifier"]["levels"]
    largest = max(levels, key=int) if levels else None
    notifier_p99 = levels[largest]["p99_ms"] if largest else 0.0
    rows = [
        ("query top-10 hot req/s vs naive GET", ratio["query_top10_hot_vs_naive_get"], ">=", 1.5),
        (
            "query top-10 hot p99 vs naive GET p99",
            ratio["query_top10_hot_p99_vs_naive_get_p99"],
            "<=",
            1.0,
        ),
        ("ingest single POST req/s vs naive POST", ratio["ingest_single_vs_naive_post"], ">=", 1.0),
        ("ingest batch events/s", figures["ingest"]["batch"]["events_s"], ">=", 50_000),
        ("ranker events/s (one process)", figures["ranker"]["events_s"], ">=", 50_000),
        ("freshness p99 ms at offered load", figures["freshness"]["p99_ms"], "<=", 250),
        (f"notifier p99 ms at {largest} clients", notifier_p99, "<=", 500),
    ]
    return [
        {
            "target": name,
            "value": value,
            "op": op,
            "bound": bound,
            "met": value >= bound if op == ">=" else value <= bound,
        }
        for name, value, op, bound in rows
    ]


def table(results: dict[str, Any]) -> str:
    """The Markdown table printed at the end and pasted into the README."""
    figures = results["figures"]
    naive, query, ingest = figures["naive"], figures["query"], figures["ingest"]

    def http(name: str, figure: dict[str, Any], unit: str = "req/s") -> str:
        rate = figure.get("events_s", figure["req_s"]) if unit == "events/s" else figure["req_s"]
        return f"| {name} | {rate:,.0f} {unit} | {figure['p50_ms']:.1f} | {figure['p99_ms']:.1f} |"

    lines = [
        "| measurement | throughput | p50 ms | p99 ms |",
        "|---|---|---|---|",
        f"| Redis ceiling: pipelined ZADD | {figures['redis']['zadd_ops_s']:,.0f} ops/s | | |",
        f"| Redis ceiling: pipelined ZREVRANGE 0 9 | "
        f"{figures['redis']['zrevrange_ops_s']:,.0f} ops/s | | |",
        http("naive app POST (bare ZADD)", naive["post"]),
        http("naive app GET (ZREVRANGE 0 9)", naive["get"]),
        http("ingest single POST (auth, validation, acks=all)", ingest["single"]),
        http(
            f"ingest batch POST ({ingest['batch']['events_per_request']} events)",
            ingest["batch"],
            "events/s",
        ),
        f"| ranker, one process (PostgreSQL + Redis + changes) | "
        f"{figures['ranker']['events_s']:,.0f} events/s | | |",
        f"| freshness 202 → query API at {figures['freshness']['offered_eps']:,.0f} events/s "
        f"offered | | {figures['freshness']['p50_ms']:.1f} | "
        f"{figures['freshness']['p99_ms']:.1f} |",
        http("query top-10, hot cache", query["hot"]["top10"]),
        http("query around-me, hot cache", query["hot"]["around"]),
        http("query top-10, cold (TTL 0, random competition)", query["cold"]["top10"]),
        http("query around-me, cold (TTL 0, random user)", query["cold"]["around"]),
    ]
    for level, figure in figures["notifier"]["levels"].items():
        lines.append(
            f"| notifier {int(level):,} WebSocket clients, 202 → frame "
            f"({figure['bytes_per_connection'] / 1024:.1f} KiB/connection) | | "
            f"{figure['p50_ms']:.1f} | {figure['p99_ms']:.1f} |"
        )
    lines += ["", "| ratio (same run) | value |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in results["ratios"].items()]
    lines += ["", "| target | measured | bound | met |", "|---|---|---|---|"]
    lines += [
        f"| {row['target']} | {row['value']:,.2f} | {row['op']} {row['bound']:,} | "
        f"{'yes' if row['met'] else '**no**'} |"
        for row in results["targets"]
    ]
    return "\n".join(lines)


def partial_ratios(figures: dict[str, Any]) -> dict[str, float]:
    """The ratios a partial run (``--phases``) can compute from what it measured."""
    if "ingest" not in figures or "naive" not in figures:
        return {}
    ingest, naive = figures["ingest"], figures["naive"]
    return {
        "ingest_single_vs_naive_post": _ratio(ingest["single"]["req_s"], naive["post"]["req_s"]),
        "ingest_batch_events_vs_naive_post": _ratio(
            ingest["batch"]["events_s"], naive["post"]["req_s"]
        ),
    }


def partial_table(results: dict[str, Any]) -> str:
    """The measured figures of a partial run (``--phases``): no targets table."""
    lines = ["| measurement | throughput | p50 ms | p99 ms |", "|---|---|---|---|"]
    figures = results["figures"]

    def http(name: str, figure: dict[str, Any], rate_key: str = "req_s") -> str:
        unit = "events/s" if rate_key == "events_s" else "req/s"
        return (
            f"| {name} | {figure[rate_key]:,.0f} {unit} | {figure['p50_ms']:.1f} | "
            f"{figure['p99_ms']:.1f} |"
        )

    if "naive" in figures:
        lines.append(http("naive app POST (bare ZADD)", figures["naive"]["post"]))
        lines.append(http("naive app GET (ZREVRANGE 0 9)", figures["naive"]["get"]))
    if "ingest" in figures:
        lines.append(http("ingest single POST", figures["ingest"]["single"]))
        lines.append(http("ingest batch POST", figures["ingest"]["batch"], "events_s"))
    for level, figure in figures.get("notifier", {}).get("levels", {}).items():
        lines.append(
            f"| notifier {int(level):,} WebSocket clients, 202 → frame | | "
            f"{figure['p50_ms']:.1f} | {figure['p99_ms']:.1f} |"
        )
    lines += ["", "| ratio (same run) | value |", "|---|---|"]
    lines += [f"| {name} | {value:.2f} |" for name, value in results["ratios"].items()]
    return "\n".join(lines)


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write ``results`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
