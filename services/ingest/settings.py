"""The ingest service's settings: the common ones plus what only ingest reads."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class IngestSettings(CommonSettings):
    """Ingest's configuration: its port, batch bound and rate limits (the trusted proxies and
    the rate-limit leases are common settings: the query API and notifier limit too)."""

    ingest_port: int = Field(8001, ge=1, le=65535, description="Ingest service HTTP port.")
    ingest_batch_max_events: int = Field(1000, ge=1, description="Largest accepted batch.")
    rate_player_per_s: float = Field(10.0, gt=0, description="`scores:write` requests/s.")
    rate_player_burst: int = Field(20, ge=1, description="`scores:write` burst.")
    rate_server_per_s: float = Field(1000.0, gt=0, description="`scores:write:any` events/s.")
    rate_server_burst: int = Field(5000, ge=1, description="`scores:write:any` burst (events).")
    rate_anonymous_per_s: float = Field(20.0, gt=0, description="Per-IP requests/s (no token).")
    rate_anonymous_burst: int = Field(40, ge=1, description="Per-IP burst (no token).")
    rate_admin_per_s: float = Field(50.0, gt=0, description="`admin` requests/s.")
    rate_admin_burst: int = Field(100, ge=1, description="`admin` burst.")
