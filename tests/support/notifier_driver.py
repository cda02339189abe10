"""Driving the notifier in tests: competitions, standings and change messages, as the ranker does.

Until a test runs the real ranker, :class:`RankerStandIn` writes standings through the shared
:class:`LeaderboardStore`, bumps the competition's version counter and publishes the
:class:`ChangeMessage` (keyed by competition id) the way the ranker does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from podium.settings import PlatformSettings
from shared.change_feed import encode_change_message
from shared.competitions import create_competition
from shared.db import create_pool
from shared.kafka import create_producer
from shared.leaderboard_store import LeaderboardStore, StandingWrite
from shared.redis_client import create_redis
from shared.redis_keys import version_key
from shared.schemas.change_message import ChangeMessage, UserChange, WindowChange
from shared.schemas.competition import (
    Competition,
    CompetitionCreate,
    RankStyle,
    ResetSchedule,
    TeamsSetting,
    Visibility,
)
from shared.teams import team_board_id
from tests.support.standings import write_as_ranker


@dataclass
class RankerStandIn:
    """Writes standings to Redis and publishes change messages for them."""

    settings: PlatformSettings
    pool: asyncpg.Pool
    redis: Redis
    producer: AIOKafkaProducer

    @property
    def store(self) -> LeaderboardStore:
        return LeaderboardStore(self.redis, self.settings.redis_key_prefix)

    async def competition(
        self,
        competition_id: str,
        *,
        visibility: Visibility = Visibility.PUBLIC,
        rank_style: RankStyle = RankStyle.UNIQUE,
        name: str | None = None,
        reset: ResetSchedule = ResetSchedule.NONE,
        teams: TeamsSetting | None = None,
        max_attempts: int | None = None,
    ) -> Competition:
        """Create a competition and build its (empty) Redis index (and its team board's;
        write the team board with ``set_scores(shared.teams.team_board(competition), ...)``)."""
        competition = await create_competition(
            self.pool,
            CompetitionCreate(
                id=competition_id,
                name=name or competition_id,
                visibility=visibility,
                rank_style=rank_style,
                reset=reset,
                teams=teams,
                max_attempts=max_attempts,
            ),
        )
        await self.store.rebuild(self.pool, competition.id, competition.sort_order)
        if teams is not None:
            board = team_board_id(competition.id)
            await self.store.rebuild(self.pool, board, competition.sort_order)
        return competition

    async def set_scores(
        self,
        competition: Competition,
        scores: dict[str, float],
        *,
        window: str = "alltime",
        publish: bool = True,
    ) -> ChangeMessage:
        """Write ``scores`` (absolute standings) and publish the resulting change message
        (``publish=False``: Redis changes and nobody is told, as when Redis loses writes)."""
        now = datetime.now(UTC)
        results = await write_as_ranker(
            self.pool,
            self.store,
            competition.id,
            competition.sort_order,
            {window: [StandingWrite(user, value, now) for user, value in scores.items()]},
        )
        top = await self.store.top(
            competition.id, window, competition.sort_order, 0, self.settings.ranker_top_n
        )
        version = int(
            await self.redis.incr(version_key(self.settings.redis_key_prefix, competition.id))
        )
        change_message = ChangeMessage(
            competition_id=competition.id,
            version=version,
            emitted_at=datetime.now(UTC),
            windows=[
                WindowChange(
                    window=window,
                    changed=[
                        UserChange(user_id=user, score=scores[user], rank=rank)
                        for user, rank in results[window].ranks.items()
                    ],
                    top_changed=True,
                    top=top,
                    total=results[window].total,
                )
            ],
        )
        if publish:
            await self._publish(change_message)
        return change_message

    async def announce_rebuilt(self, competition: Competition) -> ChangeMessage:
        """Publish a ``rebuilt`` change message listing no users, as the reconciler does."""
        version = int(
            await self.redis.incr(version_key(self.settings.redis_key_prefix, competition.id))
        )
        change_message = ChangeMessage(
            competition_id=competition.id,
            version=version,
            emitted_at=datetime.now(UTC),
            windows=[],
            rebuilt=True,
        )
        await self._publish(change_message)
        return change_message

    async def _publish(self, change_message: ChangeMessage) -> None:
        key, value = encode_change_message(change_message)
        await self.producer.send_and_wait(self.settings.topic_changes, value, key=key)


@contextlib.asynccontextmanager
async def ranker_stand_in(settings: PlatformSettings) -> AsyncIterator[RankerStandIn]:
    """A :class:`RankerStandIn` with its own pool, Redis client and producer."""
    pool = await create_pool(settings)
    redis = create_redis(settings)
    producer = create_producer(settings)
    await producer.start()
    try:
        yield RankerStandIn(settings, pool, redis, producer)
    finally:
        await producer.stop()
        await redis.aclose()
        await pool.close()
