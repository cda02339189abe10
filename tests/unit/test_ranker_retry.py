"""The ranker's batch retry policy (tenacity): forever, jittered, capped, cancellable.

The end-to-end behaviour (a failing dependency stalls the batch, offsets hold, the batch
applies once it is back) is in tests/integration/test_ranker_applier.py and
tests/e2e/test_ranker_recovery.py; these check the policy itself without any store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY
from tenacity import RetryCallState

from services.ranker.applier import BatchApplier
from services.ranker.planner import BatchPlan, IncomingEvent


def _applier(max_backoff_s: float, apply: Any) -> BatchApplier:
    applier = BatchApplier.__new__(BatchApplier)  # no pool, Redis or producer needed
    applier.settings = SimpleNamespace(ranker_retry_max_backoff_s=max_backoff_s)  # type: ignore[assignment]
    applier.apply = apply  # type: ignore[method-assign]
    return applier


def _retries() -> float:
    return REGISTRY.get_sample_value("podium_ranker_batch_retries_total") or 0.0


def test_waits_double_from_a_tenth_of_a_second_up_to_the_cap_with_jitter() -> None:
    cap_s = 5.0
    retrying = _applier(cap_s, None)._retrying(1)
    state = RetryCallState(retrying, fn=None, args=(), kwargs={})
    waits = []
    for attempt in range(1, 3001):  # far past 2**1024 (a float overflow for a naive 0.1 * 2**n)
        state.attempt_number = attempt
        ceiling = min(cap_s, 0.1 * 2.0 ** min(attempt - 1, 100))
        wait = retrying.wait(state)
        assert ceiling / 2 <= wait <= ceiling, (attempt, wait)
        waits.append(wait)
    assert len({round(wait, 6) for wait in waits[100:]}) > 1, "no jitter at the cap"


async def test_any_error_is_retried_until_the_batch_applies() -> None:
    calls = 0

    async def apply(events: Sequence[IncomingEvent]) -> BatchPlan:
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise (OSError if calls % 2 else RuntimeError)("dependency down")
        return BatchPlan()

    before = _retries()
    await asyncio.wait_for(_applier(0.02, apply).apply_with_retries([]), 10)
    assert calls == 5
    assert _retries() - before == 4


async def test_cancellation_is_not_retried() -> None:
    calls = 0

    async def apply(events: Sequence[IncomingEvent]) -> None:
        nonlocal calls
        calls += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await _applier(0.02, apply).apply_with_retries([])
    assert calls == 1


async def test_shutdown_during_a_back_off_stops_the_retries() -> None:
    calls = 0

    async def apply(events: Sequence[IncomingEvent]) -> None:
        nonlocal calls
        calls += 1
        raise OSError("down")

    task = asyncio.create_task(_applier(60.0, apply).apply_with_retries([]))
    while calls < 3:  # waits of 0.05-0.1 s, 0.1-0.2 s, then one of 0.2-0.4 s
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 3


async def test_a_batch_whose_messages_the_broker_refused_is_applied_again_before_its_offsets() -> (
    None
):
    """The pipelined path: a refused change message or dead letter surfaces in the batch's
    rest, which applies the batch again (as ``apply`` retries its own failed publish) and
    returns only once that attempt's messages were acknowledged."""
    loop = asyncio.get_running_loop()
    refused: asyncio.Future[None] = loop.create_future()
    refused.set_exception(OSError("broker refused the record"))
    reapplied: list[int] = []

    async def apply_and_send(events: Sequence[IncomingEvent]) -> tuple[BatchPlan, list[Any]]:
        return BatchPlan(), [refused]

    async def apply(events: Sequence[IncomingEvent]) -> BatchPlan:
        reapplied.append(len(events))
        return BatchPlan()

    applier = _applier(0.02, apply)
    applier._apply_and_send = apply_and_send  # type: ignore[method-assign]
    before = _retries()
    _, delivered = await applier.apply_then_deliver([])
    assert reapplied == []  # applied and handed over; the acks are the rest's business
    await asyncio.wait_for(delivered(), 10)
    assert reapplied == [0]
    assert _retries() - before == 1
