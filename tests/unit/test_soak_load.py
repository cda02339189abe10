"""The soak's write load never sends a batch larger than ingest accepts."""

from __future__ import annotations

import asyncio
from typing import Any

from soak.load import WriteLoad


async def test_a_catch_up_tick_is_split_into_batches_ingest_accepts() -> None:
    """A tick that owes thousands of events (the loop caught up after a stall) goes out as
    several batches of at most ``max_batch_events``: a 30-minute soak at 2,000 events/s had
    71,537 events refused with 422 ``too_long`` before."""
    load = WriteLoad(["http://127.0.0.1:1"], "token", 10.0, 5, seed=1, batch_share=1.0,
                     max_batch_events=1000)  # fmt: skip
    sizes: list[int] = []

    async def record(_client: Any, events: list[dict[str, Any]]) -> None:
        sizes.append(len(events))

    load._deliver = record  # type: ignore[method-assign]
    events = [load._event() for _ in range(2500)]
    load._launch(None, events)  # type: ignore[arg-type]
    await asyncio.gather(*load._in_flight)
    assert sizes == [1000, 1000, 500]
    assert load.stats.offered == 2500
