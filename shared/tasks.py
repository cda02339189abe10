"""Stopping a background task so that the stop cannot hang.

On Python 3.11, ``asyncio.wait_for`` swallows a cancellation that arrives just as the awaited
future completes (CPython gh-86296, fixed in 3.12): a loop that awaits ``wait_for`` (a
replica check, an asyncpg call with a timeout) then carries on as if never cancelled, and a
plain ``task.cancel(); await task`` waits for it forever. A CI run's read-replica test hung
300 s in exactly that ``await``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

RECANCEL_AFTER_S = 1.0


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and return once it has ended, cancelling it again every
    :data:`RECANCEL_AFTER_S` while it runs on (``asyncio.wait`` neither raises the task's
    cancellation nor absorbs the caller's). As ``task.cancel(); await task`` with the
    cancellation suppressed: an error the task had ended with is raised."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_AFTER_S)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()
