"""Query reads at the run's connections: top-10 and "around me", hot and cold cache.

Hot: the same page again and again (the micro-cache serves it). Cold: a query process whose
micro-cache TTL is 0, asked for a random competition / user each time (every read hits Redis).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import scripts
from bench.config import BenchConfig
from bench.measure import wrk_figure
from bench.workload import competition_id, event_target, user_id


def _common(config: BenchConfig) -> dict[str, Any]:
    return {
        "connections": config.http_connections,
        "duration_s": config.http_duration_s,
        "repeats": config.http_repeats,
        "warmup_s": config.warmup_s,
    }


def query_hot(base_url: str, work_dir: Path, config: BenchConfig) -> dict[str, Any]:
    """Top-10 and around-me of one competition / one user, repeated."""
    cid, uid = event_target(config.competitions + 7, config.competitions, config.users)
    top = wrk_figure(
        f"{base_url}/api/v1/leaderboards/{competition_id(cid)}/top?limit=10",
        lambda _repeat: scripts.plain_get(),
        work_dir,
        "query-top-hot",
        **_common(config),
    )
    around = wrk_figure(
        f"{base_url}/api/v1/leaderboards/{competition_id(cid)}/around/{user_id(uid)}?radius=5",
        lambda _repeat: scripts.plain_get(),
        work_dir,
        "query-around-hot",
        **_common(config),
    )
    return {"top10": top, "around": around}


def query_cold(
    base_url: str, work_dir: Path, config: BenchConfig, ranked_fraction: float
) -> dict[str, Any]:
    """Top-10 and around-me of random competitions / users against a TTL-0 process; users
    are drawn from the ``ranked_fraction`` of events the ranker applied."""
    top = wrk_figure(
        base_url,
        lambda _repeat: scripts.varying_top(config.competitions),
        work_dir,
        "query-top-cold",
        **_common(config),
    )
    around = wrk_figure(
        base_url,
        lambda _repeat: scripts.varying_around(
            config.competitions, config.users, int(config.ranker_events * ranked_fraction * 0.9)
        ),
        work_dir,
        "query-around-cold",
        **_common(config),
    )
    return {"top10": top, "around": around}
