"""The soak report: figures in and out of fault windows, as a dict, a table and JSON."""

from __future__ import annotations

import math
from typing import Any

from soak.check import CheckResult
from soak.faults import FaultRecord
from soak.load import LoadStats, RequestRecord


def percentile_ms(latencies_s: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``latencies_s`` in milliseconds (None: no samples); the
    report's figures and the timeline's per-second p99 use this one definition."""
    if not latencies_s:
        return None
    ordered = sorted(latencies_s)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return round(ordered[index] * 1000, 2)


def _percentiles(latencies_s: list[float]) -> dict[str, float | int]:
    return {
        "count": len(latencies_s),
        "p50_ms": percentile_ms(latencies_s, 0.5) or 0.0,
        "p99_ms": percentile_ms(latencies_s, 0.99) or 0.0,
    }


def _in_fault(
    record: RequestRecord, run_started: float, windows: list[tuple[float, float]]
) -> bool:
    offset = record.started - run_started
    return any(start <= offset <= end for start, end in windows)


def build_report(
    *,
    command: str,
    duration_s: float,
    rate_eps: float,
    run_started: float,
    stats: LoadStats,
    faults: list[FaultRecord],
    check: CheckResult,
    lost: int,
    subscribers: int,
    max_in_flight: int = 0,
    interrupted: bool = False,
) -> dict[str, Any]:
    """Every figure of one soak run; ``passed`` is the verdict."""
    windows = [fault.window() for fault in faults]
    latency: dict[str, dict[str, Any]] = {}
    errors: dict[str, int] = {
        "5xx_outside_faults": 0,
        "5xx_in_faults": 0,
        "no_answer_outside_faults": 0,
    }
    for kind in ("write", "read"):
        inside = [
            r.latency_s
            for r in stats.requests
            if r.kind == kind and _in_fault(r, run_started, windows)
        ]
        outside = [
            r.latency_s
            for r in stats.requests
            if r.kind == kind and not _in_fault(r, run_started, windows)
        ]
        latency[kind] = {
            "in_fault_windows": _percentiles(inside),
            "outside_fault_windows": _percentiles(outside),
        }
    for record in stats.requests:
        faulty = _in_fault(record, run_started, windows)
        if record.status >= 500:
            errors["5xx_in_faults" if faulty else "5xx_outside_faults"] += 1
        elif record.status == 0 and not faulty:
            errors["no_answer_outside_faults"] += 1
    passed = (
        lost == 0
        and check.lost == 0
        and check.double_counted == 0
        and not stats.rejected
        and check.postgres_equal
        and check.redis_equal
        and check.query_equal
        and check.websocket_equal is not False
        and all(fault.recovered_s is not None and not fault.broken for fault in faults)
        and not interrupted
    )
    return {
        "command": command,
        "duration_s": duration_s,
        "offered_rate_eps": rate_eps,
        "events": {
            "offered": stats.offered,
            "accepted": len(stats.accepted),
            "rejected": len(stats.rejected),
            "retried_attempts": stats.retries,
            "lost": lost + check.lost,
            "double_counted": check.double_counted,
        },
        "load": {
            "max_in_flight": max_in_flight,
            "max_in_flight_seen": stats.max_in_flight_seen,
            "fell_behind_seconds": len(stats.behind_s),
            "per_second": stats.rates(),
        },
        "stores_equal_oracle": {
            "postgres": check.postgres_equal,
            "redis": check.redis_equal,
            "query_api": check.query_equal,
            "websocket_clients": check.websocket_equal,
        },
        "websocket_subscribers": subscribers,
        "errors": errors,
        "latency": latency,
        "faults": [
            {
                "name": f.name,
                "at_s": round(f.at_s, 2),
                "recovery_s": None if f.recovered_s is None else round(f.recovered_s, 2),
                "detail": f.detail,
                "guarantee_broken": f.broken,
            }
            for f in faults
        ],
        "mismatches": check.mismatches[:50],
        "rejected_examples": list(stats.rejected.items())[:5],
        "interrupted": interrupted,
        "passed": passed,
    }


def format_report(report: dict[str, Any]) -> str:
    """A human-readable summary of :func:`build_report`'s dict."""
    events = report["events"]
    verdict = "PASSED" if report["passed"] else "FAILED"
    if report.get("interrupted"):
        verdict = "INTERRUPTED (a partial report: the final check did not run)"
    lines = [
        f"soak {verdict}: {report['duration_s']:.0f} s at {report['offered_rate_eps']:.0f}"
        " events/s offered",
        f"  events: offered {events['offered']}, accepted {events['accepted']},"
        f" rejected {events['rejected']}, lost {events['lost']},"
        f" double-counted {events['double_counted']},"
        f" retried attempts {events['retried_attempts']}",
        f"  load: at most {report['load']['max_in_flight_seen']} requests in flight"
        f" (window {report['load']['max_in_flight']}), behind schedule"
        f" {report['load']['fell_behind_seconds']} s",
        f"  Redis: {report.get('redis', 'single')};"
        f" equal to oracle: {report['stores_equal_oracle']}",
        f"  errors: {report['errors']}",
    ]
    for kind, figures in report["latency"].items():
        inside, outside = figures["in_fault_windows"], figures["outside_fault_windows"]
        lines.append(
            f"  {kind} latency ms: outside faults p50 {outside['p50_ms']} p99 {outside['p99_ms']}"
            f" (n={outside['count']}); in faults p50 {inside['p50_ms']} p99 {inside['p99_ms']}"
            f" (n={inside['count']})"
        )
    for fault in report["faults"]:
        lines.append(
            f"  fault {fault['name']} at {fault['at_s']} s: recovered in"
            f" {fault['recovery_s']} s ({fault['detail']})"
            + (
                f"; GUARANTEE BROKEN: {fault['guarantee_broken']}"
                if fault["guarantee_broken"]
                else ""
            )
        )
    broker = report.get("broker")
    if broker and broker["cpu_percent_max"] is not None:
        lines.append(
            f"  broker CPU (% of a core): first minute {broker['cpu_percent_first_minute']},"
            f" last minute of load {broker['cpu_percent_last_minute_of_load']},"
            f" max {broker['cpu_percent_max']}"
            + (
                "; SATURATED: the dev broker's fetch cost grows with the batches it stores"
                " (docs/soak.md, \"The dev broker's limit\"): lag after this is the broker's"
                if broker["saturated"]
                else ""
            )
        )
    records = report.get("ranker_records")
    if records:
        lines.append(
            "  ranker records fetched: "
            + ", ".join(f"{outcome} {count}" for outcome, count in records.items())
        )
    lines += [f"  lost: {event}" for event in report.get("lost_examples", [])]
    where = report.get("lost_where")
    if where:
        lines.append(
            f"  lost events on the topic: committed {where.get('committed')},"
            f" end offsets {where.get('end_offsets')}"
        )
        lines += [
            f"  lost {event_id}: {copies}"
            for event_id, copies in list(where.get("events", {}).items())[:10]
        ]
    lines += [f"  mismatch: {mismatch}" for mismatch in report["mismatches"][:10]]
    return "\n".join(lines)
