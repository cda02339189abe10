"""Rebuilding one competition whose Redis leaderboards disagree with PostgreSQL (issue #17).

The batch applier (after a refused write), the reconciler and ``podium rebuild`` all heal
through :func:`heal_competition`, which takes the competition's advisory lock first, the same
lock a ranker holds from its PostgreSQL reads to its commit. Under it no batch is between
its Redis write and its commit, so the marker and PostgreSQL's standings version can be
compared honestly (a batch in flight would make a fresh board look ahead), and the rebuild's
reads on the same connection are consistent without a REPEATABLE READ snapshot: nothing that
changes the competition's standings or version can commit while the lock is held.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.ranker.repository import lock_competitions
from shared.leaderboard_store import (
    LeaderboardStore,
    Staleness,
    read_standings_version,
    staleness,
)
from shared.schemas.competition import SortOrder

if TYPE_CHECKING:
    from services.ranker.repository import DbConnection

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Healed:
    """What :func:`heal_competition` found under the lock and did.

    ``found`` is None when Redis already reflected PostgreSQL's version (nothing rebuilt
    unless forced): someone healed it between the detection and the lock.
    """

    found: Staleness | None
    rebuilt: bool
    standings: int
    version: int


async def heal_competition(
    connection: DbConnection,
    store: LeaderboardStore,
    competition_id: str,
    sort_order: SortOrder,
    *,
    force: bool = False,
) -> Healed:
    """Rebuild the competition from PostgreSQL if its built marker is not PostgreSQL's version.

    Takes the competition's advisory lock on ``connection`` (in a transaction of its own,
    released when this returns) and re-checks there; ``force`` rebuilds even a fresh one
    (``podium rebuild``).
    """
    async with connection.transaction():
        await lock_competitions(connection, [competition_id])
        version = await read_standings_version(connection, competition_id)
        (marker,) = await store.built_markers([competition_id])
        found = staleness(marker, version)
        if found is None and not force:
            return Healed(None, rebuilt=False, standings=0, version=version)
        loaded = await store.rebuild(connection, competition_id, sort_order)
    if found is not None:
        logger.warning(
            "leaderboard %s was %s in Redis (marker %s, PostgreSQL version %d); rebuilt %d"
            " standing(s)",
            competition_id,
            found.value,
            marker,
            version,
            loaded,
        )
    return Healed(found, rebuilt=True, standings=loaded, version=version)
