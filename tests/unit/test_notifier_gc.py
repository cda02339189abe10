"""The notifier's collector tuning: pauses are measured, long-lived objects are frozen."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

from prometheus_client import REGISTRY

from services.notifier.gc_pauses import freeze_long_lived, watch_gc_pauses


def test_every_collection_pause_is_observed() -> None:
    watch_gc_pauses()
    watch_gc_pauses()  # idempotent: one callback
    labels = {"generation": "2"}
    before = REGISTRY.get_sample_value("podium_gc_pause_seconds_count", labels) or 0.0
    gc.collect()
    after = REGISTRY.get_sample_value("podium_gc_pause_seconds_count", labels)
    assert after is not None
    assert after >= before + 1  # automatic collections may add more


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


async def test_survivors_are_frozen_and_the_sweep_collects_frozen_cycles() -> None:
    first, second = _Node(), _Node()
    first.other, second.other = second, first  # a cycle: only the collector frees it
    dead = weakref.ref(first)
    task = asyncio.create_task(freeze_long_lived(interval_s=0.05, sweep_interval_s=0.3))
    try:
        await asyncio.sleep(0.12)
        assert gc.get_freeze_count() > 0
        del first, second
        gc.collect(1)
        assert dead() is not None  # frozen: young collections leave it alone
        for _ in range(40):  # the sweep unfreezes and collects everything once
            if dead() is None:
                break
            await asyncio.sleep(0.05)
        assert dead() is None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert gc.get_freeze_count() == 0
