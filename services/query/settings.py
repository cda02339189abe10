"""The query service's settings: the common ones plus what only the query service reads."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class QuerySettings(CommonSettings):
    """The query service's configuration: its port, page cache and breaker."""

    query_port: int = Field(8002, ge=1, le=65535, description="Query service HTTP port.")
    query_cache_ttl_ms: int = Field(250, ge=0, le=60_000, description="Micro-cache TTL (ms).")
    query_breaker_failures: int = Field(
        5, ge=1, description="Consecutive Redis failures that open the circuit breaker."
    )
    query_breaker_reset_s: float = Field(2.0, gt=0, description="Open-breaker cool-down.")
