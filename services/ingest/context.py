"""What the ingest endpoints share for the app's lifetime, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from starlette.requests import Request

from services.ingest.publisher import EventPublisher
from services.ingest.rate_policies import RatePolicies
from services.ingest.settings import IngestSettings
from services.ingest.tournament_gate import TournamentGate
from shared.competition_cache import CompetitionCache
from shared.http.client_ip import IPNetwork
from shared.leaderboard_store import LeaderboardStore
from shared.rate_limit.buckets import RateLimiter


@dataclass(frozen=True, slots=True)
class IngestContext:
    """The open clients and helpers of one ingest app."""

    settings: IngestSettings
    pool: asyncpg.Pool
    publisher: EventPublisher
    competitions: CompetitionCache
    limiter: RateLimiter
    policies: RatePolicies
    trusted_proxies: list[IPNetwork]
    store: LeaderboardStore
    """The leaderboards in Redis (a competition's deletion removes its keys)."""
    producer: AIOKafkaProducer
    """The raw producer (a deletion announces itself on ``leaderboard-changes``)."""
    tournament_gate: TournamentGate
    """Entrant and attempt checks of tournament scores."""


def ingest_context(request: Request) -> IngestContext:
    """The context the lifespan put on the app."""
    context: IngestContext = request.app.state.ingest
    return context
