"""`python -m bench.notifier_scale_micro` (issue #18: the notifier with many competitions) end
to end at a tiny size: every published change message reaches the notifier's handler, its
rooms' clients get frames, and the CPU per message is measured. Never timings."""

from __future__ import annotations

from pathlib import Path

from bench.notifier_scale_micro import run


async def test_the_notifier_scale_bench_delivers_every_message_to_one_process(
    tmp_path: Path,
) -> None:
    results = await run(competitions=500, rooms=10, messages=2_000, work_dir=tmp_path)
    assert results["rooms"] == 10
    assert results["messages_delivered"] == results["messages_published"] == 2_000
    assert results["frames_received"] > 0  # the rooms' competitions got some of them
    assert results["notifier_cpu_us_per_message"] is not None
    assert results["rss_per_room_kib"] is not None
