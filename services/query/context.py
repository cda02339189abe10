"""What the query handlers share: settings, the catalog, the Redis reader and the page cache."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.query.circuit_breaker import CircuitBreaker
from services.query.settings import QuerySettings
from shared.http.representation import Representation
from shared.leaderboard_store import LeaderboardStore
from shared.read_replicas import ReadPool
from shared.redis_client import RedisClient
from shared.single_flight import SingleFlight

from .catalog import CompetitionCatalog
from .leaderboards import REDIS_FAILURES, LeaderboardReader
from .page_cache import PageCache, PageKey


@dataclass
class QueryContext:
    """Built once per process in the lifespan; handlers find it on ``app.state.query``."""

    settings: QuerySettings
    catalog: CompetitionCatalog
    reader: LeaderboardReader
    pages: PageCache
    pool: ReadPool
    """PostgreSQL replicas (tournament attempts; the catalog reads competitions itself)."""
    page_flights: SingleFlight[Representation] = field(default_factory=SingleFlight)

    @classmethod
    def build(cls, settings: QuerySettings, pool: ReadPool, redis: RedisClient) -> QueryContext:
        """Wire the parts from open clients.

        Lookups read the replicas (``pool``); a rebuild of a lost board reads the primary,
        so it stamps the version of the standings it wrote (docs/operations.md).
        """
        breaker = CircuitBreaker(
            "redis",
            failure_threshold=settings.query_breaker_failures,
            reset_timeout_s=settings.query_breaker_reset_s,
            failure_types=REDIS_FAILURES,
        )
        reader = LeaderboardReader(
            LeaderboardStore(redis, settings.redis_key_prefix),
            pool.primary,
            breaker,
            timeout_s=settings.redis_timeout_s,
        )
        return cls(
            settings=settings,
            catalog=CompetitionCatalog(pool, settings),
            reader=reader,
            pages=PageCache(settings.query_cache_ttl_ms),
            pool=pool,
        )


__all__ = ["PageKey", "QueryContext"]
