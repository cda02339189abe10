"""Optional py-spy profiles of a service process while a phase runs (``--profile``)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TOP_FRAMES = 25


def py_spy() -> str | None:
    """The py-spy executable (installed with the dev dependencies), if any."""
    import sys

    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def profiled(pid: int | None, output: Path, *, rate_hz: int = 200) -> Iterator[None]:
    """Sample ``pid`` with ``py-spy record`` (collapsed stacks) while the block runs."""
    tool = py_spy()
    if pid is None or tool is None:
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen(
        [
            tool,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(rate_hz),
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


def summarize(collapsed: Path) -> dict[str, Any]:
    """Top frames by self and by inclusive samples of a collapsed-stack file."""
    if not collapsed.exists():
        return {}
    self_samples: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_samples[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[dict[str, Any]]:
        return [
            {"frame": frame, "percent": round(100 * count / total, 1)}
            for frame, count in counter.most_common(TOP_FRAMES)
        ]

    return {"samples": total, "self": share(self_samples), "inclusive": share(inclusive)}
