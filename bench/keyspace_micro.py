"""A board rebuild beside other keys (issue #18): its cost must not grow with the keyspace.

A rebuild has to know which windows of the competition Redis holds (to drop those PostgreSQL
no longer has). It used to SCAN the whole keyspace for them, so with 100,000 competitions
(~400,000 keys) every rebuild cost a third of a second and recovering from a lost Redis was
quadratic; the window index (``shared.redis_keys.competition_windows``) makes it two reads.
Here: the configured PostgreSQL and Redis, a schema and key prefix of the run's own; per
keyspace size, that many unrelated keys are added, then competitions without a board (as a
new room of the notifier, or every competition after Redis lost its data) are rebuilt one
after the other: the mean wall time per rebuild.

    .venv/bin/python -m bench.keyspace_micro --sizes 0,100000,400000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench.micro_stores import micro_stores
from shared.redis_keys import built_key, windows_key
from shared.schemas.competition import SortOrder

_FILL_CHUNK = 10_000


async def run(sizes: list[int], rebuilds: int) -> dict[str, Any]:
    """Mean ms per rebuild of an unbuilt competition at each keyspace size (ascending)."""
    ids = [f"k{index}" for index in range(rebuilds)]
    async with micro_stores() as stores:
        pool, redis, store = stores.pool, stores.redis, stores.store
        prefix = stores.settings.redis_key_prefix
        await pool.executemany(
            "INSERT INTO competitions (id, name, sort_order, operator, reset)"
            " VALUES ($1, $1, 'desc', 'best', 'none')",
            [(cid,) for cid in ids],
        )
        filled = 0
        per_size: dict[str, float] = {}
        for size in sorted(sizes):
            while filled < size:
                chunk_end = min(size, filled + _FILL_CHUNK)
                async with redis.pipeline(transaction=False) as pipe:
                    for index in range(filled, chunk_end):  # other competitions' markers
                        pipe.set(built_key(prefix, f"other{index}"), "1")
                    await pipe.execute()
                filled = chunk_end
            started = time.perf_counter()
            for cid in ids:
                await redis.delete(built_key(prefix, cid), windows_key(prefix, cid))
                await store.rebuild(pool, cid, SortOrder.DESC)
            per_size[str(size)] = round((time.perf_counter() - started) / rebuilds * 1000, 2)
        return {"rebuild_ms_by_other_keys": per_size, "rebuilds_per_size": rebuilds}


def main() -> None:
    """Run once and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="0,100000,400000", help="other keys, comma-separated")
    parser.add_argument("--rebuilds", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(json.dumps(asyncio.run(run(sizes, args.rebuilds)), indent=2))


if __name__ == "__main__":
    main()
