"""Garbage-collector pauses as a metric (and a warning for long ones), and keeping them short.

A process holding tens of thousands of long-lived objects (a notifier with 10,000 sockets)
can stall its event loop for hundreds of milliseconds in a full collection; this makes such
stalls visible (``podium_gc_pause_seconds{generation}``) instead of showing up in profiles
as whatever line happened to allocate.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from prometheus_client import Histogram

logger = logging.getLogger(__name__)

GC_PAUSE = Histogram(
    "podium_gc_pause_seconds",
    "Garbage-collector pauses of this process, by generation.",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
LONG_PAUSE_S = 0.1

_started: list[float] = []


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started.append(time.perf_counter())
        return
    if not _started:
        return
    pause = time.perf_counter() - _started.pop()
    generation = int(info.get("generation", 0))
    GC_PAUSE.labels(str(generation)).observe(pause)
    if pause >= LONG_PAUSE_S:
        logger.warning(
            "garbage collection of generation %d paused the process for %.0f ms",
            generation,
            pause * 1000,
        )


def watch_gc_pauses() -> None:
    """Record every collection's pause (idempotent)."""
    if _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)


def unwatch_gc_pauses() -> None:
    """Stop recording pauses (when the app that asked for it shuts down)."""
    if _on_gc in gc.callbacks:
        gc.callbacks.remove(_on_gc)
    _started.clear()


FREEZE_INTERVAL_S = 1.0
SWEEP_INTERVAL_S = 600.0


async def freeze_long_lived(
    interval_s: float = FREEZE_INTERVAL_S, sweep_interval_s: float = SWEEP_INTERVAL_S
) -> None:
    """Keep long-lived objects out of the collector's full passes; run as a task.

    Every ``interval_s`` the young generations are collected (cheap) and whatever survived is
    moved to the permanent generation (``gc.freeze``), so a full collection only scans
    objects younger than ``interval_s`` instead of every connection's objects: with 10,000
    WebSocket clients a full pass took 150-850 ms, stalling every update. Objects still die
    by reference counting as usual; only *cyclic* garbage among frozen objects waits for the
    sweep, which every ``sweep_interval_s`` unfreezes everything and collects once.
    """
    loop = asyncio.get_running_loop()
    next_sweep = loop.time() + sweep_interval_s
    try:
        while True:
            await asyncio.sleep(interval_s)
            if loop.time() >= next_sweep:
                gc.unfreeze()
                gc.collect()
                next_sweep = loop.time() + sweep_interval_s
            else:
                gc.collect(1)
            gc.freeze()
    finally:
        gc.unfreeze()
