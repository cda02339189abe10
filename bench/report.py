"""Ratios against the same run's baselines, the targets, the printed tables and the JSON.

Every table is built from whatever the run measured: a figure a phase did not produce (a
partial ``--phases`` run, or a phase that stopped reporting a key) renders as "not measured"
rather than failing the report, and a target without its figure is neither met nor missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from services.ranker.metrics import BATCH_STAGES

RATIO_KEYS = (
    "query_top10_hot_vs_naive_get",
    "query_top10_hot_p99_vs_naive_get_p99",
    "query_top10_cold_vs_naive_get",
    "ingest_single_vs_naive_post",
    "ingest_single_cpu_vs_naive_post_cpu",
    "ingest_batch_events_vs_naive_post",
    "ranker_vs_redis_zadd",
    "naive_post_vs_redis_zadd",
    "naive_get_vs_redis_zrevrange",
)
NOT_MEASURED = "not measured"
_MET = {True: "met", False: "**not met**", None: NOT_MEASURED}
FRESHNESS_LOADS = ("1000", "5000")
NOTIFIER_TARGET_CLIENTS = "10000"


def figure(figures: dict[str, Any], *path: str) -> Any:
    """``figures[path[0]][path[1]]...``, or None where any step is missing."""
    node: Any = figures
    for key in path:
        if not isinstance(node, dict) or node.get(key) is None:
            return None
        node = node[key]
    return node


def _number(figures: dict[str, Any], *path: str) -> float | None:
    value = figure(figures, *path)
    return float(value) if isinstance(value, int | float) else None


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` to three significant digits (None when undefined).

    Significant digits, not decimals: the ranker against Redis' pipelined ZADD is ~0.001 and
    rounded to three decimals became 0.0 on a loaded machine.
    """
    if numerator is None or not denominator:
        return None
    return float(f"{numerator / denominator:.3g}")


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    """Every ratio of a Podium figure to its baseline measured in the same run (those whose
    two figures the run has)."""
    n = _number
    pairs = {
        "query_top10_hot_vs_naive_get": (
            n(figures, "query", "hot", "top10", "req_s"),
            n(figures, "naive", "get", "req_s"),
        ),
        "query_top10_hot_p99_vs_naive_get_p99": (
            n(figures, "query", "hot", "top10", "p99_ms"),
            n(figures, "naive", "get", "p99_ms"),
        ),
        "query_top10_cold_vs_naive_get": (
            n(figures, "query", "cold", "top10", "req_s"),
            n(figures, "naive", "get", "req_s"),
        ),
        "ingest_single_vs_naive_post": (
            n(figures, "ingest", "single", "req_s"),
            n(figures, "naive", "post", "req_s"),
        ),
        # CPU per request of each server (less noisy than req/s on shared cores)
        "ingest_single_cpu_vs_naive_post_cpu": (
            n(figures, "ingest", "single", "cpu_us_per_request"),
            n(figures, "naive", "post", "cpu_us_per_request"),
        ),
        "ingest_batch_events_vs_naive_post": (
            n(figures, "ingest", "batch", "events_s"),
            n(figures, "naive", "post", "req_s"),
        ),
        "ranker_vs_redis_zadd": (
            n(figures, "ranker", "events_s"),
            n(figures, "redis", "zadd_ops_s"),
        ),
        "naive_post_vs_redis_zadd": (
            n(figures, "naive", "post", "req_s"),
            n(figures, "redis", "zadd_ops_s"),
        ),
        "naive_get_vs_redis_zrevrange": (
            n(figures, "naive", "get", "req_s"),
            n(figures, "redis", "zrevrange_ops_s"),
        ),
    }
    found = {name: _ratio(*pair) for name, pair in pairs.items()}
    return {name: value for name, value in found.items() if value is not None}


@dataclass(frozen=True)
class Target:
    """One target: where its value is, how it compares with the bound, which issue set it."""

    name: str
    issue: str
    value: Callable[[dict[str, Any], dict[str, float]], float | None]
    op: str
    bound: float
    unit: str


def _at(*path: str) -> Callable[[dict[str, Any], dict[str, float]], float | None]:
    return lambda figures, _ratios: _number(figures, *path)


def _ratio_of(name: str) -> Callable[[dict[str, Any], dict[str, float]], float | None]:
    return lambda _figures, found: found.get(name)


def _freshness_targets() -> list[Target]:
    rows = []
    for level, bound, label in (
        ("idle", 50.0, "idle"),
        *(
            (load, b, f"at {int(load):,} events/s offered")
            for load, b in zip(FRESHNESS_LOADS, (150.0, 250.0), strict=True)
        ),
    ):
        rows.append(
            Target(
                f"freshness p99 {label}, 202 → query API",
                "#12",
                _at("freshness", level, "p99_ms"),
                "<=",
                bound,
                "ms",
            )
        )
        rows.append(
            Target(
                f"freshness p99 {label}, 202 → WebSocket frame",
                "#12",
                _at("freshness", level, "ws_p99_ms"),
                "<=",
                bound,
                "ms",
            )
        )
    return rows


TARGETS: tuple[Target, ...] = (
    *_freshness_targets(),
    Target(
        "ranker CPU per applied event (one process)",
        "#12",
        _at("ranker", "cpu_us_per_event"),
        "<=",
        25.0,
        "µs",
    ),
    Target(
        "notifier 10,000 clients p99, 202 → frame",
        "#12",
        _at("notifier", "levels", NOTIFIER_TARGET_CLIENTS, "p99_ms"),
        "<=",
        300.0,
        "ms",
    ),
    Target(
        "notifier 10,000 clients connected",
        "#12",
        _at("notifier", "levels", NOTIFIER_TARGET_CLIENTS, "connect_s"),
        "<=",
        10.0,
        "s",
    ),
    Target(
        "ingest single POST req/s vs naive POST",
        "#12",
        _ratio_of("ingest_single_vs_naive_post"),
        ">=",
        1.0,
        "x",
    ),
    Target(
        "ingest batch events/s (one worker)",
        "#12",
        _at("ingest", "batch", "events_s"),
        ">=",
        60_000.0,
        "events/s",
    ),
    Target(
        "query top-10 hot req/s vs naive GET",
        "#8",
        _ratio_of("query_top10_hot_vs_naive_get"),
        ">=",
        1.5,
        "x",
    ),
    Target(
        "query top-10 hot p99 vs naive GET p99",
        "#8",
        _ratio_of("query_top10_hot_p99_vs_naive_get_p99"),
        "<=",
        1.0,
        "x",
    ),
)


def targets(figures: dict[str, Any], found: dict[str, float]) -> list[dict[str, Any]]:
    """Every target with its measured value and whether it is met (None: not measured)."""
    rows = []
    for target in TARGETS:
        value = target.value(figures, found)
        met = None
        if value is not None:
            met = value >= target.bound if target.op == ">=" else value <= target.bound
        rows.append(
            {
                "target": target.name,
                "issue": target.issue,
                "value": value,
                "op": target.op,
                "bound": target.bound,
                "unit": target.unit,
                "met": met,
            }
        )
    return rows


def _amount(value: float | None, unit: str = "") -> str:
    if value is None:
        return NOT_MEASURED
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    return f"{text} {unit}".rstrip()


def _ms(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else ""


def _row(name: str, throughput: str = "", p50: Any = None, p99: Any = None) -> str:
    return f"| {name} | {throughput} | {_ms(p50)} | {_ms(p99)} |"


def _http(name: str, fig: dict[str, Any] | None, rate_key: str = "req_s") -> str:
    if fig is None:
        return _row(name, NOT_MEASURED)
    unit = "events/s" if rate_key == "events_s" else "req/s"
    return _row(name, _amount(fig.get(rate_key), unit), fig.get("p50_ms"), fig.get("p99_ms"))


def _ranker_rows(figures: dict[str, Any]) -> list[str]:
    ranker = figures.get("ranker")
    if ranker is None:
        return [_row("ranker, one process (PostgreSQL + Redis + changes)", NOT_MEASURED)]
    cpu = (
        f"; CPU µs/event: ranker {_amount(ranker.get('cpu_us_per_event'))},"
        f" PostgreSQL {_amount(ranker.get('postgres_cpu_us_per_event'))},"
        f" Redis {_amount(ranker.get('redis_cpu_us_per_event'))}"
    )
    return [
        _row(
            "ranker, one process (PostgreSQL + Redis + changes)",
            _amount(ranker.get("events_s"), "events/s") + cpu,
        ),
        _row(
            "ranker, two processes (same drain)",
            _amount(ranker.get("two_rankers_events_s"), "events/s"),
        ),
    ]


def _reconcile_row(figures: dict[str, Any]) -> str:
    """Issue #17's reconciler: one pass over every competition (p50 column: nothing stale;
    p99 column: healing a few boards set one version back)."""
    fig = figures.get("reconcile")
    name = "reconciler pass (ms: nothing stale / healing boards)"
    if fig is None:
        return _row(name, NOT_MEASURED)
    detail = (
        f"{fig['competitions']:,} competitions; {fig['stale_boards']} stale:"
        f" {_amount(fig['ms_per_healed_board'], 'ms')} per healed board"
    )
    return _row(name, detail, fig["clean_pass_ms"], fig["healing_pass_ms"])


def _unseen(fig: dict[str, Any], key: str) -> str:
    """A note on probes never seen (they count as the probe timeout in the percentiles)."""
    unseen = fig.get(key) or 0
    return f" ({unseen} of {fig.get('probes')} probes unseen: counted as timeout)" if unseen else ""


def _freshness_rows(figures: dict[str, Any]) -> list[str]:
    freshness = figures.get("freshness")
    if not freshness:
        return [_row("freshness 202 → query API / WebSocket frame", NOT_MEASURED)]
    rows = []
    for level, fig in freshness.items():
        if level == "idle":
            label, load = "idle (probes only)", ""
        else:
            label = f"at {float(level):,.0f} events/s offered (k6, open loop)"
            load = f"{fig.get('achieved_eps', 0):,.0f} events/s achieved"
        rows.append(
            _row(
                f"freshness {label}, 202 → query API{_unseen(fig, 'probes_unseen')}",
                load,
                fig.get("p50_ms"),
                fig.get("p99_ms"),
            )
        )
        rows.append(
            _row(
                f"freshness {label}, 202 → WebSocket frame{_unseen(fig, 'ws_unseen')}",
                "",
                fig.get("ws_p50_ms"),
                fig.get("ws_p99_ms"),
            )
        )
    return rows


def _notifier_rows(figures: dict[str, Any]) -> list[str]:
    levels = figure(figures, "notifier", "levels")
    if not levels:
        return [_row("notifier WebSocket clients, 202 → frame", NOT_MEASURED)]
    rows = []
    for level, fig in levels.items():
        connect = fig.get("connect_s")
        memory = fig.get("bytes_per_connection")
        details = ", ".join(
            part
            for part in (
                f"connected in {connect:.1f} s" if isinstance(connect, int | float) else "",
                f"{memory / 1024:.1f} KiB/connection" if isinstance(memory, int | float) else "",
            )
            if part
        )
        rows.append(
            _row(
                f"notifier {int(level):,} WebSocket clients, 202 → frame"
                + (f" ({details})" if details else ""),
                "",
                fig.get("p50_ms"),
                fig.get("p99_ms"),
            )
        )
    return rows


def measurement_table(figures: dict[str, Any]) -> str:
    """Every measured figure (rows of unmeasured phases say so)."""
    redis = figures.get("redis") or {}
    naive = figures.get("naive") or {}
    ingest = figures.get("ingest") or {}
    query = figures.get("query") or {}
    batch_events = figure(ingest, "batch", "events_per_request")
    lines = [
        "| measurement | throughput | p50 ms | p99 ms |",
        "|---|---|---|---|",
        _row("Redis ceiling: pipelined ZADD", _amount(redis.get("zadd_ops_s"), "ops/s")),
        _row(
            "Redis ceiling: pipelined ZREVRANGE 0 9", _amount(redis.get("zrevrange_ops_s"), "ops/s")
        ),
        _http("naive app POST (bare ZADD)", naive.get("post")),
        _http("naive app GET (ZREVRANGE 0 9)", naive.get("get")),
        _http("ingest single POST (auth, validation, acks=all)", ingest.get("single")),
        _http(
            f"ingest batch POST ({batch_events} events)" if batch_events else "ingest batch POST",
            ingest.get("batch"),
            "events_s",
        ),
        *_ranker_rows(figures),
        _reconcile_row(figures),
        *_freshness_rows(figures),
        _http("query top-10, hot cache", figure(query, "hot", "top10")),
        _http("query around-me, hot cache", figure(query, "hot", "around")),
        _http("query top-10, cold (TTL 0, random competition)", figure(query, "cold", "top10")),
        _http("query around-me, cold (TTL 0, random user)", figure(query, "cold", "around")),
        *_notifier_rows(figures),
    ]
    return "\n".join(lines)


def targets_table(rows: list[dict[str, Any]]) -> str:
    """Each target: bound, measured value, met / not met / not measured."""
    lines = ["| target | issue | bound | measured | met |", "|---|---|---|---|---|"]
    for row in rows:
        bound = f"{row['op']} {_amount(row['bound'], row['unit'])}"
        value = _amount(row["value"], row["unit"])
        met = _MET[row["met"]]
        lines.append(f"| {row['target']} | {row['issue']} | {bound} | {value} | {met} |")
    return "\n".join(lines)


# the stages of a score's way from ingest to a reader, in order (series names in the scrape;
# a name without labels matches any labels); a service's new stage histogram goes here
STAGES = (
    (
        "ingest: POST /api/v1/scores (server side)",
        "ingest podium_http_request_duration_seconds{route=/api/v1/scores,service=ingest}",
    ),
    ("ingest: produce → acks=all", "ingest podium_ingest_produce_duration_seconds{outcome=ok}"),
    ("ranker: event age when applied", "ranker podium_ranker_event_age_seconds"),
    (
        "ranker: one batch applied (PostgreSQL, Redis, changes)",
        "ranker podium_ranker_apply_duration_seconds",
    ),
    *(
        (
            f"ranker: batch stage {stage}",
            f"ranker podium_ranker_batch_stage_seconds{{stage={stage}}}",
        )
        for stage in BATCH_STAGES  # heal: ~0 unless a batch found a stale board
    ),
    ("query: change emitted → cached pages retired", "query podium_query_change_lag_seconds"),
    ("notifier: change emitted → update sent", "notifier podium_notifier_fanout_latency_seconds"),
    ("notifier: change emitted → frame written", "notifier podium_notifier_change_age_seconds"),
)


def _stage(stages: dict[str, Any], series: str) -> dict[str, Any] | None:
    """The phase's figure for ``series`` (a name without labels matches any labels)."""
    if series in stages:
        found: dict[str, Any] = stages[series]
        return found
    return next((value for key, value in stages.items() if key.split("{")[0] == series), None)


def stage_table(figures: dict[str, Any]) -> str:
    """The budget per stage: each stage histogram's p50/p99 in each freshness phase, under
    the end-to-end figures the probes measured."""
    freshness = figures.get("freshness") or {}
    if not freshness:
        return ""
    levels = list(freshness)
    header = (
        "| stage | "
        + " | ".join(
            "idle p50 / p99 ms" if level == "idle" else f"{float(level):,.0f}/s p50 / p99 ms"
            for level in levels
        )
        + " |"
    )
    lines = [header, "|---|" + "---|" * len(levels)]

    def cells(get: Callable[[dict[str, Any]], tuple[Any, Any] | None]) -> str:
        out = []
        for level in levels:
            pair = get(freshness[level])
            out.append(f"{_ms(pair[0])} / {_ms(pair[1])}" if pair else NOT_MEASURED)
        return " | ".join(out)

    lines.append(
        "| end to end: 202 → query API (probe) | "
        + cells(lambda f: (f.get("p50_ms"), f.get("p99_ms")))
        + " |"
    )
    lines.append(
        "| end to end: 202 → WebSocket frame (probe) | "
        + cells(lambda f: (f.get("ws_p50_ms"), f.get("ws_p99_ms")))
        + " |"
    )
    lines.append(
        "| probe: POST → 202 (client side) | "
        + cells(lambda f: (f.get("probe_post_p50_ms"), f.get("probe_post_p99_ms")))
        + " |"
    )
    for name, series in STAGES:

        def stage_pair(f: dict[str, Any], series: str = series) -> tuple[Any, Any] | None:
            found = _stage(f.get("stages") or {}, series)
            return (found["p50_ms"], found["p99_ms"]) if found else None

        if any(stage_pair(freshness[level]) for level in levels):  # a stage no service has
            lines.append(f"| {name} | " + cells(stage_pair) + " |")
    return "\n".join(lines)


CPU_ROLES = (
    ("ingest", "ingest"),
    ("ranker", "ranker"),
    ("query", "query"),
    ("notifier", "notifier"),
    ("broker", "broker (tansu)"),
    ("postgresql", "PostgreSQL"),
    ("redis", "Redis"),
    ("k6", "k6 (load)"),
    ("bench", "bench (probes, WebSocket watchers)"),
    ("other", "everything else"),
    ("machine_busy", "machine busy (cores in use)"),
    ("machine_steal", "machine steal (hypervisor)"),
)


def cpu_share_table(figures: dict[str, Any]) -> str:
    """Each role's share of a core in each freshness phase: who had the cores while the
    stages above waited."""
    freshness = figures.get("freshness") or {}
    levels = [level for level in freshness if freshness[level].get("cpu_shares")]
    if not levels:
        return ""
    header = "| CPU, share of one core | " + " | ".join(
        "idle" if level == "idle" else f"{float(level):,.0f}/s" for level in levels
    )
    lines = [header + " |", "|---|" + "---|" * len(levels)]
    for role, label in CPU_ROLES:
        values = [freshness[level]["cpu_shares"].get(role) for level in levels]
        if any(value is not None for value in values):
            cells = " | ".join(NOT_MEASURED if v is None else f"{v:.2f}" for v in values)
            lines.append(f"| {label} | {cells} |")
    return "\n".join(lines)


RUN_BUDGET_S = 600.0


def table(results: dict[str, Any]) -> str:
    """The Markdown tables printed at the end and pasted into the README."""
    figures = results["figures"]
    lines = [measurement_table(figures), "", "| ratio (same run) | value |", "|---|---|"]
    lines += [f"| {name} | {value:.3g} |" for name, value in results["ratios"].items()]
    lines += ["", targets_table(results["targets"])]
    budget = stage_table(figures)
    if budget:
        lines += ["", budget]
    shares = cpu_share_table(figures)
    if shares:
        lines += ["", shares]
    total_s = results.get("total_seconds")
    if isinstance(total_s, int | float):
        verdict = "within" if total_s <= RUN_BUDGET_S else "**over**"
        phases = ", ".join(
            f"{name} {s:.0f} s" for name, s in results.get("phase_seconds", {}).items()
        )
        lines += [
            "",
            f"Run: {total_s:.0f} s, {verdict} the {RUN_BUDGET_S:.0f} s budget ({phases}).",
        ]
    return "\n".join(lines)


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write ``results`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
