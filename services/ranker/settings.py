"""The ranker's settings: the common ones plus what only the ranker reads."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class RankerSettings(CommonSettings):
    """The ranker's configuration: its health port, batching, consumer group, retries and
    the reconciler's cadence (issue #17, ``services/ranker/reconcile.py``).

    ``ranker_top_n`` is common, not here: the notifier bounds subscriptions by it.
    """

    ranker_port: int = Field(
        8004, ge=1, le=65535, description="Ranker health and metrics HTTP port."
    )
    ranker_batch_size: int = Field(
        5000,
        ge=1,
        description="Most events taken per ranker batch (bigger: more events/s, slower batches).",
    )
    ranker_batch_within_s: float = Field(
        0.0,
        ge=0,
        description="Longest wait for more records to fill a ranker batch (0: apply what one"
        " fetch returned; under load batches grow by themselves while the last one applies).",
    )
    ranker_fetch_max_wait_ms: int = Field(
        10,
        ge=0,
        le=30_000,
        description="Longest time the broker may hold the ranker's fetch when no data is ready."
        " Kafka answers as soon as data arrives, so this only sets the idle fetch rate (about"
        " 1000 / this per broker per ranker); the dev broker (tansu) always waits it out.",
    )
    ranker_group_id: str = Field("podium-ranker", description="Ranker consumer group / app id.")
    ranker_period_grace_s: int = Field(
        3600, ge=0, description="Late events still count toward an ended period this long."
    )
    ranker_retry_max_backoff_s: float = Field(
        5.0, gt=0, description="Longest back-off between retries of a failed batch."
    )
    reconcile_probe_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the ranker asks Redis for its server identity; a new one (a"
        " restart, a failover) starts a reconcile pass at once.",
    )
    reconcile_interval_s: float = Field(
        30.0,
        gt=0,
        description="Longest time between reconcile passes (every board's Redis version"
        " compared with PostgreSQL's, stale ones rebuilt), whatever the probe sees.",
    )
