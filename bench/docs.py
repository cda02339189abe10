"""Paste a run's tables into README.md and docs/performance.md (``podium bench --update-docs``).

Both documents keep the latest full run between ``<!-- bench:start -->`` and
``<!-- bench:end -->``: a heading line with the date, machine and load, then the tables that
:func:`bench.report.table` printed (measurements, ratios, targets, the budget per stage).
Only a full-size run may be pasted: a smoke or partial run's figures are not the project's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.machine import PYTHON_LOOP_STEPS

START = "<!-- bench:start -->"
END = "<!-- bench:end -->"
DOCUMENTS = ("README.md", "docs/performance.md")


def run_heading(results: dict[str, Any]) -> str:
    """One line saying when, where and how loaded the run was."""
    machine = results["machine"]
    load = machine.get("load_average_at_start") or []
    load_text = ", ".join(f"{value:.2f}" for value in load) if load else "unknown"
    return (
        f"Latest `make bench`: {machine['date']} on {machine.get('nproc', '?')} cores"
        f" ({machine.get('cpu_model', 'unknown CPU')}), load average at start {load_text},"
        f" {PYTHON_LOOP_STEPS:,}-step Python loop {machine.get('python_loop_ms', '?')} ms,"
        f" {results['total_seconds']:.0f} s, commit {machine.get('git_commit', 'unknown')}."
    )


def replace_between_markers(text: str, body: str) -> str:
    """``text`` with what lies between the bench markers replaced by ``body``."""
    start = text.index(START) + len(START)
    end = text.index(END)
    return text[:start] + "\n" + body.strip() + "\n" + text[end:]


def update_docs(results: dict[str, Any], root: Path) -> list[Path]:
    """Write the run's heading and tables into every document under ``root``; the paths."""
    if results["config"] != "full" or results.get("phases") != "all":
        raise ValueError("only a full `make bench` run goes into the documents")
    body = run_heading(results) + "\n\n" + results["table"]
    written = []
    for name in DOCUMENTS:
        path = root / name
        path.write_text(replace_between_markers(path.read_text(), body))
        written.append(path)
    return written
