"""Ingest collects garbage rarely while it serves, and puts the collector back afterwards."""

from __future__ import annotations

import gc

from services.ingest.app import GC_GEN0_THRESHOLD, collecting_rarely


def test_thresholds_are_raised_while_serving_and_restored_after() -> None:
    before = gc.get_threshold()
    with collecting_rarely():
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
        assert gc.get_freeze_count() > 0  # start-up objects are never rescanned
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
