"""Consumer lag bookkeeping: records behind the high watermark, and time spent behind."""

from __future__ import annotations

import time
from typing import NamedTuple

from prometheus_client import REGISTRY

from services.ranker.lag import LagTracker


class TP(NamedTuple):
    topic: str
    partition: int


def _sample(name: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value(name, {"partition": str(partition)})


def test_lag_is_zero_when_caught_up_and_grows_while_behind() -> None:
    tp = TP("unit-lag", 97)
    highwaters = {tp: 10}
    tracker = LagTracker(highwaters.get)
    tracker.committed({tp: 10})
    assert _sample("podium_ranker_consumer_lag_records", 97) == 0
    assert _sample("podium_ranker_consumer_lag_seconds", 97) == 0

    highwaters[tp] = 15  # new records arrive; nothing committed since
    tracker.refresh()
    time.sleep(0.01)
    tracker.refresh()
    assert _sample("podium_ranker_consumer_lag_records", 97) == 5
    assert (_sample("podium_ranker_consumer_lag_seconds", 97) or 0) > 0

    tracker.committed({tp: 15})
    assert _sample("podium_ranker_consumer_lag_seconds", 97) == 0
    assert _sample("podium_ranker_committed_offset", 97) == 15

    tracker.forget([tp])
    assert _sample("podium_ranker_consumer_lag_records", 97) is None
