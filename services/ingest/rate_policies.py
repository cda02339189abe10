"""Ingest's rate-limit policies: which bucket a caller uses.

Authenticated callers are limited per subject by what their token allows (players,
trusted servers, admins); callers without a valid token are limited per client IP. The
buckets, leases and the 429 are shared (:mod:`shared.rate_limit`).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.ingest.settings import IngestSettings
from shared.rate_limit.buckets import RatePolicy


@dataclass(frozen=True, slots=True)
class RatePolicies:
    """The bucket shapes configured by ``PODIUM_RATE_*``."""

    player: RatePolicy
    server: RatePolicy
    admin: RatePolicy
    anonymous: RatePolicy

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> RatePolicies:
        """Read the four policies from ``settings``."""
        return cls(
            player=RatePolicy("player", settings.rate_player_per_s, settings.rate_player_burst),
            server=RatePolicy("server", settings.rate_server_per_s, settings.rate_server_burst),
            admin=RatePolicy("admin", settings.rate_admin_per_s, settings.rate_admin_burst),
            anonymous=RatePolicy(
                "anonymous", settings.rate_anonymous_per_s, settings.rate_anonymous_burst
            ),
        )
