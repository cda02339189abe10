"""``X-Forwarded-For`` spoofing does not get around rate limits.

A client talking to ingest directly (an untrusted peer) is limited by its own address whatever
XFF it writes; behind a configured proxy (``PODIUM_TRUSTED_PROXIES``), the right-most hop that
is not a trusted proxy counts, so hops a client prepends are ignored. Tokens are limited per
subject, and XFF does not change that either. The client side binds 127.0.0.1 (untrusted) or
127.0.0.2 (the trusted proxy) on the loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from podium.settings import PlatformSettings
from services.ingest.app import create_app
from tests.support.servers import running_app

BURST = 3
PROXY = "127.0.0.2"
BAD_TOKEN = {"Authorization": "Bearer not-a-valid-token"}


@pytest.fixture
async def ingest_url(settings: PlatformSettings) -> AsyncIterator[str]:
    limited = settings.model_copy(
        update={
            "rate_anonymous_burst": BURST,
            "rate_anonymous_per_s": 0.001,
            "rate_player_burst": BURST,
            "rate_player_per_s": 0.001,
            "trusted_proxies": [PROXY],
        }
    )
    async with running_app(create_app(limited), limited) as base_url:
        yield base_url


def _client(base_url: str, local_address: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=local_address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=20)


def _score(user_id: str, index: int) -> dict[str, Any]:
    return {"event_id": f"xff-{user_id}-{index}", "competition_id": "xff",
            "user_id": user_id, "value": index}  # fmt: skip


def _spoofed(index: int) -> dict[str, str]:
    """A different made-up client address in every spoofing header, per request."""
    fake = f"203.0.113.{index % 250 + 1}"
    return {
        "X-Forwarded-For": f"{fake}, 198.51.100.{index % 250 + 1}",
        "X-Real-IP": fake,
        "Forwarded": f"for={fake}",
        "True-Client-IP": fake,
    }


async def test_rotating_xff_from_an_untrusted_peer_stays_limited(
    ingest_url: str, token_for: Callable[..., str]
) -> None:
    async with _client(ingest_url, "127.0.0.1") as client:
        anonymous = [
            (await client.post("/api/v1/scores", json=_score("a", i),
                               headers={**BAD_TOKEN, **_spoofed(i)})).status_code
            for i in range(3 * BURST)
        ]  # fmt: skip
        assert anonymous == [401] * BURST + [429] * (2 * BURST)

        player = {"Authorization": f"Bearer {token_for('xff-player', 'scores:write')}"}
        admin = {"Authorization": f"Bearer {token_for('xff-admin', 'admin')}"}
        created = await client.post(
            "/api/v1/competitions", json={"id": "xff", "name": "xff"}, headers=admin
        )
        assert created.status_code == 201, created.text
        per_subject = [
            (await client.post("/api/v1/scores", json=_score("xff-player", i),
                               headers={**player, **_spoofed(i)})).status_code
            for i in range(3 * BURST)
        ]  # fmt: skip
        assert per_subject == [202] * BURST + [429] * (2 * BURST)

    # the same subject from another address is still the same (empty) bucket
    async with _client(ingest_url, PROXY) as client:
        again = await client.post(
            "/api/v1/scores",
            json=_score("xff-player", 99),
            headers={**player, "X-Forwarded-For": "192.0.2.77"},
        )
        assert again.status_code == 429


async def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_counts(
    ingest_url: str,
) -> None:
    async def anonymous_status(client: httpx.AsyncClient, forwarded_for: str) -> int:
        response = await client.post(
            "/api/v1/scores",
            json=_score("b", 0),
            headers={**BAD_TOKEN, "X-Forwarded-For": forwarded_for},
        )
        return response.status_code

    async with _client(ingest_url, PROXY) as proxy:
        # client 192.0.2.10 uses its burst up through the proxy
        used = [await anonymous_status(proxy, "192.0.2.10") for _ in range(BURST)]
        assert used == [401] * BURST
        # whatever it prepends, the proxy appended its real address last: still limited
        assert await anonymous_status(proxy, "192.0.2.10") == 429
        assert await anonymous_status(proxy, "10.9.8.7, 192.0.2.10") == 429
        assert await anonymous_status(proxy, "1.1.1.1, 2.2.2.2, 192.0.2.10") == 429
        # a trusted proxy hop after it (two proxies in a row) is skipped, not counted
        assert await anonymous_status(proxy, f"192.0.2.10, {PROXY}") == 429
        # another client behind the same proxy has its own bucket
        assert await anonymous_status(proxy, "192.0.2.20") == 401
        assert await anonymous_status(proxy, "192.0.2.10, 192.0.2.20") == 401

    async with _client(ingest_url, "127.0.0.1") as direct:
        # an untrusted peer claiming to be a fresh client behind the proxy gains nothing:
        # it is charged to 127.0.0.1, which the first test's client does not share here
        statuses = [await anonymous_status(direct, "192.0.2.30") for _ in range(BURST + 1)]
        assert statuses == [401] * BURST + [429]
        # and writing the exhausted client's address does not charge that client either
        async with _client(ingest_url, PROXY) as proxy:
            assert await anonymous_status(proxy, "192.0.2.30") == 401
