"""Two ``podium serve ingest`` processes share one Redis: the rate limit holds across both."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from devstack.processes import free_port
from podium.settings import PlatformSettings
from shared.schemas.score_event import parse_topic_message
from tests.conftest import SettingsFactory
from tests.support.servers import (
    podium_command,
    process_environment,
    running_process,
    wait_until_ready,
)
from tests.support.topic_reader import read_topic

TokenFor = Callable[..., str]
BURST = 4


def cli_token(settings: PlatformSettings, subject: str, scope: str) -> str:
    """A token printed by ``podium token`` with the services' configuration."""
    done = subprocess.run(
        podium_command("token", "--sub", subject, "--scope", scope),
        env=process_environment(settings),
        capture_output=True,
        check=True,
        timeout=60,
    )
    return done.stdout.decode().strip()


async def test_rate_limit_holds_across_two_ingest_processes(
    settings_factory: SettingsFactory,
    settings: PlatformSettings,
    token_for: TokenFor,
    artifacts_dir: Path,
) -> None:
    shared_limits = settings_factory(rate_player_per_s=0.001, rate_player_burst=BURST)
    ports = [free_port(), free_port()]
    with (
        running_process(
            podium_command("serve", "ingest"),
            process_environment(shared_limits, PODIUM_INGEST_PORT=str(ports[0])),
            artifacts_dir / "ingest-replica-1.log",
        ),
        running_process(
            podium_command("serve", "ingest"),
            process_environment(shared_limits, PODIUM_INGEST_PORT=str(ports[1])),
            artifacts_dir / "ingest-replica-2.log",
        ),
    ):
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        player_token, _ = await asyncio.gather(
            asyncio.to_thread(cli_token, shared_limits, "u1", "scores:write"),
            asyncio.gather(*(wait_until_ready(url) for url in urls)),
        )
        player = {"Authorization": f"Bearer {player_token}"}
        admin = {"Authorization": f"Bearer {token_for('ops', 'admin')}"}
        async with httpx.AsyncClient(timeout=20) as client:
            created = await client.post(
                f"{urls[0]}/api/v1/competitions", json={"id": "c1", "name": "Cup"}, headers=admin
            )
            assert created.status_code == 201, created.text
            answers: list[tuple[int, int]] = []
            for index in range(2 * BURST):
                replica = index % 2
                response = await client.post(
                    f"{urls[replica]}/api/v1/scores",
                    json={
                        "event_id": f"e{index}",
                        "competition_id": "c1",
                        "user_id": "u1",
                        "value": index,
                    },
                    headers=player,
                )
                answers.append((replica, response.status_code))
        assert answers == [(i % 2, 202 if i < BURST else 429) for i in range(2 * BURST)]

    records = await read_topic(shared_limits, shared_limits.topic_score_events)
    accepted = sorted(
        parse_topic_message(record.value).event_id for record in records if record.value
    )
    assert accepted == [f"e{index}" for index in range(BURST)]
