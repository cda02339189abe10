"""PNG plots of a soak report's timeline, with a marker at every fault.

One figure, five panels sharing the time axis: events/s offered, sent and accepted; ingest
write p99; the ranker's largest consumer lag; freshness (a probe score's 202 until the query
API shows it); the broker's CPU. matplotlib draws off-screen (the Agg backend: no display on CI
or a server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOT_FILE = "soak-timeline.png"


def write_plots(report: dict[str, Any], directory: Path) -> Path:
    """Draw ``report``'s timeline into ``directory``/soak-timeline.png; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = report.get("timeline") or []
    seconds = [row["second"] for row in rows]
    figure, axes = pyplot.subplots(5, 1, sharex=True, figsize=(11, 12), constrained_layout=True)
    rate, latency, lag, freshness, broker = axes
    for name, style in (("offered", "-"), ("sent", ":"), ("accepted", "-")):
        rate.plot(seconds, [row[name] for row in rows], style, label=name, linewidth=1)
    rate.set_ylabel("events/s")
    rate.legend(loc="upper right", fontsize="small")
    _series(latency, seconds, rows, "write_p99_ms", "ingest write p99 (ms)", log=True)
    _series(lag, seconds, rows, "ranker_lag_records", "ranker lag (records)")
    _series(freshness, seconds, rows, "freshness_ms", "freshness: 202 → query (ms)", log=True)
    _series(broker, seconds, rows, "broker_cpu_percent", "broker CPU (% of a core)")
    broker.set_xlabel("seconds since the load started")
    for fault in report.get("faults", []):
        for axis in axes:
            axis.axvline(fault["at_s"], color="tab:red", linestyle="--", linewidth=0.8)
        rate.annotate(
            fault["name"],
            (fault["at_s"], 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize="x-small",
            va="top",
            ha="right",
            color="tab:red",
        )
    verdict = "passed" if report.get("passed") else "FAILED"
    figure.suptitle(
        f"{report.get('command', 'podium soak')}: {verdict},"
        f" {report['events']['accepted']} accepted, lost {report['events']['lost']}"
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PLOT_FILE
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def _series(
    axis: Any,
    seconds: list[int],
    rows: list[dict[str, Any]],
    key: str,
    label: str,
    *,
    log: bool = False,
) -> None:
    points = [
        (second, row[key])
        for second, row in zip(seconds, rows, strict=True)
        if row.get(key) is not None  # reports from before a series existed lack its key
    ]
    axis.plot([p[0] for p in points], [p[1] for p in points], ".-", markersize=2, linewidth=0.8)
    axis.set_ylabel(label)
    if log and points and all(value > 0 for _, value in points):
        axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
