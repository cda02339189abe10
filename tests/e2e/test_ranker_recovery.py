"""Acceptance 3 and 4: Redis flushed, PostgreSQL gone mid-stream; both end equal to the oracle."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import redis.asyncio

from devstack.processes import free_port
from podium.settings import PlatformSettings
from tests.support.private_redis import private_redis
from tests.support.ranker_harness import (
    Position,
    assert_matches_oracle,
    build_workload,
    committed_offsets,
    create_competitions,
    end_offsets,
    override,
    produce,
    ranker,
    unapplied_below_commit,
    wait_committed,
    wait_for_metric,
)
from tests.support.servers import podium_command, process_environment
from tests.support.tcp_proxy import TcpProxy


async def test_redis_flushed_mid_stream_is_rebuilt(
    settings: PlatformSettings, artifacts_dir: Path, tmp_path: Path
) -> None:
    workload = build_workload(seed=3, events=3000)
    expected = workload.expected(settings.ranker_period_grace_s)
    await create_competitions(settings, workload)
    log = artifacts_dir / f"ranker-redis-loss-{settings.db_schema}.log"
    with private_redis(tmp_path / "redis", artifacts_dir / "ranker-private-redis.log") as server:
        redis_settings = override(settings, redis_url=server.url)
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            half = len(workload.messages) // 2
            with ranker(redis_settings, log) as process:
                first = await produce(settings, workload.messages[:half])
                await wait_committed(settings, end_offsets(first), 60, [process])
                positions: list[Position] = list(first)
                producing = asyncio.create_task(
                    produce(settings, workload.messages[half:], chunk=50, pause_s=0.05,
                            positions=positions)
                )  # fmt: skip
                await client.flushall()  # Redis loses everything while events keep coming
                await producing
                await wait_committed(settings, end_offsets(positions), 60, [process])
            await assert_matches_oracle(redis_settings, expected)

            # by hand: `podium rebuild` restores every leaderboard from PostgreSQL
            await client.flushall()
            environment = process_environment(redis_settings)
            done = subprocess.run(
                podium_command("rebuild"), env=environment, capture_output=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            boards = len(workload.competitions) + sum(
                1 for competition in workload.competitions.values() if competition.teams
            )
            assert f"rebuilt {boards} board(s)".encode() in done.stdout
            assert b"rebuilt c-team-sum~teams:" in done.stdout
            await assert_matches_oracle(redis_settings, expected)
            missing = subprocess.run(
                podium_command("rebuild", "--competition", "c-nope"),
                env=environment,
                capture_output=True,
                timeout=60,
            )
            assert missing.returncode == 2
            assert b"c-nope" in missing.stderr
        finally:
            await client.aclose()


async def test_postgres_outage_holds_offsets_then_catches_up(
    settings: PlatformSettings, artifacts_dir: Path
) -> None:
    workload = build_workload(seed=4, events=3000)
    expected = workload.expected(settings.ranker_period_grace_s)
    await create_competitions(settings, workload)
    third = len(workload.messages) // 3
    log = artifacts_dir / f"ranker-pg-outage-{settings.db_schema}.log"
    database_url = settings.database_url.get_secret_value()  # the machine's or an embedded one
    host, _, rest = database_url.removeprefix("postgresql://postgres@").partition(":")
    port, _, database = rest.partition("/")
    async with TcpProxy(host, int(port)) as proxy:
        proxied = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
        metrics_port = free_port()
        with ranker(settings, log, database_url=proxied, ranker_port=metrics_port) as process:
            positions = await produce(settings, workload.messages[:third])
            await wait_committed(settings, end_offsets(positions), 60, [process])
            held = await committed_offsets(settings)

            await proxy.cut()
            await produce(settings, workload.messages[third : 2 * third], positions=positions)
            # the batch fails and is retried (with back-off) several times
            await wait_for_metric(metrics_port, "podium_ranker_batch_retries_total", 3, 60)
            # the lag shows the stall: records wait while nothing commits
            await wait_for_metric(metrics_port, "podium_ranker_consumer_lag_records", 1, 30)
            async with httpx.AsyncClient(timeout=5) as http:
                ready = await http.get(f"http://127.0.0.1:{metrics_port}/health/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"] != "ok"
            assert await committed_offsets(settings) == held
            assert (
                await unapplied_below_commit(settings, workload.messages, positions, expected) == []
            )

            proxy.restore()
            await produce(settings, workload.messages[2 * third :], positions=positions)
            await wait_committed(settings, end_offsets(positions), 90, [process])
    await assert_matches_oracle(settings, expected)
