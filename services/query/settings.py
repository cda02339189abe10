"""The query service's settings: the common ones plus what only the query service reads."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class QuerySettings(CommonSettings):
    """The query service's configuration: its port, page cache, breaker and read limits."""

    query_port: int = Field(8002, ge=1, le=65535, description="Query service HTTP port.")
    query_cache_ttl_ms: int = Field(250, ge=0, le=60_000, description="Micro-cache TTL (ms).")
    query_breaker_failures: int = Field(
        5, ge=1, description="Consecutive Redis failures that open the circuit breaker."
    )
    query_breaker_reset_s: float = Field(2.0, gt=0, description="Open-breaker cool-down.")
    query_rate_reader_per_s: float = Field(
        500.0, gt=0, description="Reads/s per token subject (a caller with a valid token)."
    )
    query_rate_reader_burst: int = Field(
        2000, ge=1, description="Read burst per token subject (leased when >= 16x the lease)."
    )
    query_rate_anonymous_per_s: float = Field(
        1000.0, gt=0, description="Reads/s per client address (no or an invalid token)."
    )
    query_rate_anonymous_burst: int = Field(
        4000,
        ge=1,
        description="Read burst per client address (generous: one NAT may hold a venue).",
    )
