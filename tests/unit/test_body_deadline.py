"""shared.http.body_deadline: the edge's body deadlines, kept by one coarse sweep."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared.http.body_deadline import BodyDeadlines, BodyTimedOut

RESOLUTION_S = 0.02


async def test_a_receive_in_time_returns_its_message_and_leaves_nothing_behind() -> None:
    deadlines = BodyDeadlines(RESOLUTION_S)

    async def receive() -> str:
        await asyncio.sleep(RESOLUTION_S)
        return "body"

    assert await deadlines.wait(time.perf_counter() + 1.0, receive) == "body"
    await asyncio.sleep(RESOLUTION_S * 3)  # the sweep ran with nothing due and stopped
    assert deadlines._due == {}
    assert deadlines._sweep_handle is None


async def test_a_receive_past_its_deadline_is_cut_off_within_the_resolution() -> None:
    deadlines = BodyDeadlines(RESOLUTION_S)
    never = asyncio.Event()

    async def receive() -> None:
        await never.wait()

    started = time.perf_counter()
    with pytest.raises(BodyTimedOut):
        await deadlines.wait(started + 0.1, receive)
    elapsed = time.perf_counter() - started
    assert 0.1 <= elapsed < 0.1 + RESOLUTION_S * 10  # upper bound generous: loaded machines
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_only_the_expired_waiters_are_cut_off() -> None:
    deadlines = BodyDeadlines(RESOLUTION_S)
    arrived = asyncio.Event()

    async def slow() -> str:
        await asyncio.Event().wait()
        return "never"

    async def prompt() -> str:
        await arrived.wait()
        return "body"

    now = time.perf_counter()
    late = asyncio.create_task(deadlines.wait(now + 0.05, slow))
    on_time = asyncio.create_task(deadlines.wait(now + 5.0, prompt))
    with pytest.raises(BodyTimedOut):
        await late
    assert not on_time.done()
    arrived.set()
    assert await on_time == "body"


async def test_a_cancellation_of_the_request_itself_is_not_swallowed() -> None:
    """The client went away (the server cancels the request's task) as the deadline passed:
    the cancellation still reaches the caller, it is not turned into a 408."""
    deadlines = BodyDeadlines(RESOLUTION_S)

    async def receive() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(deadlines.wait(time.perf_counter() - 1.0, receive))
    await asyncio.sleep(0)  # waiting, its deadline already passed
    deadlines._sweep()  # the sweep cancels it ...
    task.cancel()  # ... and so does the server, in the same loop pass
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert deadlines._due == {}
    assert deadlines._expired == set()
