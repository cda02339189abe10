"""The cost of issue #17's check outside the write path: reconciler passes on a real schema.

A pass reads every ``standings_versions`` row and GETs every competition's built marker
(pipelined): what each ranker pays every ``PODIUM_RECONCILE_INTERVAL_S`` and after a new Redis
identity. Then a few markers are set one version back (what a Redis restarted from an older
snapshot holds) and a pass heals them: the part of the heal bound that grows with the damage.
The write path's share (one GET and compare in the existing script, one ``INSERT ... ON
CONFLICT`` per batch) is in the ranker figures themselves.
"""

from __future__ import annotations

from typing import Any

from services.ranker.reconcile import Reconciler, Trigger
from services.ranker.settings import RankerSettings
from shared.db import create_pool
from shared.kafka import create_producer
from shared.redis_client import create_redis
from shared.redis_keys import built_key

STALE_BOARDS = 5


async def time_passes(settings: RankerSettings, stale: int = STALE_BOARDS) -> dict[str, Any]:
    """A timed pass with nothing stale, then one healing ``stale`` boards (markers one back).

    The schema must hold competitions with standings versions and markers equal to them (a
    drained ranker leaves exactly that); the stale boards are the first by id with a version.
    """
    pool = await create_pool(settings)
    redis = create_redis(settings)
    producer = create_producer(settings)
    await producer.start()
    try:
        reconciler = Reconciler(settings, pool, redis, producer)
        await reconciler.reconcile_once(Trigger.COMMAND)  # warm (and heal what is not fresh)
        clean = await reconciler.reconcile_once(Trigger.COMMAND)
        rows = await pool.fetch(
            "SELECT competition_id, version FROM standings_versions WHERE version > 0"
            " ORDER BY competition_id LIMIT $1",
            stale,
        )
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows:
                marker = built_key(settings.redis_key_prefix, row["competition_id"])
                pipe.set(marker, str(row["version"] - 1))
            await pipe.execute()
        healing = await reconciler.reconcile_once(Trigger.COMMAND)
        assert len(healing.healed) == len(rows), healing.healed
    finally:
        await producer.stop()
        await redis.aclose()
        await pool.close()
    return {
        "competitions": clean.checked,
        "clean_pass_ms": round(clean.duration_s * 1000, 1),
        "already_stale": len(clean.healed),
        "stale_boards": len(rows),
        "healing_pass_ms": round(healing.duration_s * 1000, 1),
        "ms_per_healed_board": round(
            (healing.duration_s - clean.duration_s) * 1000 / max(len(rows), 1), 2
        ),
    }
