"""``cancel_and_wait``: a task that swallows a cancellation (as ``asyncio.wait_for`` can on
Python 3.11, gh-86296) is cancelled again until it ends, so stopping it cannot hang."""

from __future__ import annotations

import asyncio

import pytest

from shared.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_still_stopped() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed += 1  # as wait_for does when its future completed at that moment

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.05)
    await asyncio.wait_for(cancel_and_wait(task), 10)
    assert task.cancelled()
    assert swallowed == 1


async def test_an_error_the_task_ended_with_is_raised_as_awaiting_it_would() -> None:
    async def failing() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="boom"):
        await cancel_and_wait(task)
