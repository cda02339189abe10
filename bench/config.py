"""How big and how long each phase of a benchmark run is: the full run and a smoke run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    """Sizes and time bounds of one run (the full run fits in 10 minutes on 2 cores)."""

    name: str
    http_connections: int = 64
    http_duration_s: float = 5.0
    http_repeats: int = 3
    # the ingest single POST and the naive POST, run in turn: their ratio is a target, and a
    # 5 s run's ratio swung 0.7-1.4 on a busy shared host, so more pairs for its median
    http_pair_repeats: int = 5
    warmup_s: float = 1.0
    batch_connections: int = 16
    batch_events: int = 500
    redis_requests: int = 200_000
    redis_pipeline: int = 16
    competitions: int = 1000
    users: int = 100_000
    ranker_events: int = 500_000
    ranker_timeout_s: float = 150.0
    # freshness: an idle phase (probes only), then k6 offers each level (open loop)
    freshness_idle_probes: int = 50
    freshness_idle_interval_s: float = 0.2
    freshness_levels_eps: tuple[float, ...] = (1000.0, 5000.0)
    freshness_duration_s: float = 10.0
    freshness_probes_per_s: float = 10.0
    freshness_events_per_request: int = 10
    freshness_probe_competitions: int = 10
    notifier_levels: tuple[int, ...] = (1000, 5000, 10_000)
    notifier_probes: int = 5
    notifier_probe_interval_s: float = 1.0
    # k6's clients: virtual users sharing them, handshakes in flight, how long to wait for all
    notifier_vus: int = 50
    notifier_dials_in_flight: int = 200
    notifier_connect_timeout_s: float = 60.0
    # k6's Go heap may grow to this before its collector runs (bench.k6.k6_environment)
    k6_memory_limit_mib: int = 4096


FULL = BenchConfig(name="full")

SMOKE = BenchConfig(
    name="smoke",
    http_connections=8,
    http_duration_s=1.0,
    http_repeats=1,
    http_pair_repeats=1,
    warmup_s=0.0,
    batch_connections=2,
    batch_events=50,
    redis_requests=5_000,
    competitions=20,
    users=500,
    ranker_events=2_000,
    ranker_timeout_s=60.0,
    freshness_idle_probes=5,
    freshness_levels_eps=(100.0,),
    freshness_duration_s=2.0,
    freshness_probes_per_s=5.0,
    freshness_events_per_request=5,
    freshness_probe_competitions=4,
    notifier_levels=(5, 10),
    notifier_probes=2,
    notifier_probe_interval_s=0.5,
    notifier_vus=2,
    notifier_dials_in_flight=4,
)
