"""No secret in the repository and none in the logs of a run.

The log check drives the session's real ``podium serve`` processes (DEBUG logs to files) with
good and bad credentials in every place a client can put them, then searches the log files
for the JWT secret and every token any test of the session sent.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

from tests.conftest import TEST_JWT_SECRET
from tests.security.conftest import OPEN_COMPETITION, PRIVATE_COMPETITION, Stack
from tests.security.forged_tokens import hs256, unsigned, valid_claims
from tests.support.notifier_clients import closed_with, connect, receive, ws_url

REPO = Path(__file__).resolve().parents[2]
# where the test secret may be written down: the fixtures that configure the services
SECRET_ALLOWED_IN = {"tests/conftest.py"}
PRIVATE_KEY = re.compile("-----BEGIN " + r"(?:[A-Z]+ )*PRIVATE KEY-----")
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    return [REPO / name for name in listed.split("\0") if name]


def test_no_private_key_token_or_test_secret_is_tracked() -> None:
    findings = []
    for path in _tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree
        relative = path.relative_to(REPO).as_posix()
        if PRIVATE_KEY.search(text):
            findings.append(f"{relative}: private key")
        if JWT.search(text):
            findings.append(f"{relative}: JWT")
        if TEST_JWT_SECRET in text and relative not in SECRET_ALLOWED_IN:
            findings.append(f"{relative}: the test JWT secret")
    assert not findings, findings


def test_the_scanner_recognises_what_it_looks_for() -> None:
    key = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"
    token = hs256(valid_claims("podium", "someone", "admin"), b"k" * 32)
    assert PRIVATE_KEY.search(key)
    assert JWT.search(f"Authorization: Bearer {token}")


async def test_logs_of_a_run_hold_no_secret_and_no_token(stack: Stack) -> None:
    good_admin = stack.token("log-admin", "admin")
    good_player = stack.token("log-player", "scores:write")
    good_reader = stack.token("log-reader", "leaderboards:read")
    claims = valid_claims(stack.settings.jwt_issuer, "log-evil", "admin")
    bad = [
        stack.remember(hs256(claims, b"wrong-secret-wrong-secret-wrong-secret")),
        stack.remember(unsigned(claims)),
        stack.remember(hs256({**claims, "exp": 1}, TEST_JWT_SECRET.encode())),
    ]
    ingest, query = stack.urls["ingest"], stack.urls["query"]
    async with httpx.AsyncClient(timeout=20) as client:
        for token in (good_admin, good_player, *bad):
            headers = {"Authorization": f"Bearer {token}", "X-Request-ID": "log-check"}
            await client.get(f"{ingest}/api/v1/competitions", headers=headers)
            await client.post(
                f"{ingest}/api/v1/scores",
                headers=headers,
                json={"event_id": "log-1", "competition_id": OPEN_COMPETITION,
                      "user_id": "log-player", "value": 1},
            )  # fmt: skip
            await client.post(  # 422: a bad body with a (good or bad) token
                f"{ingest}/api/v1/scores", headers=headers, json={"value": "lots"}
            )
            await client.get(
                f"{query}/api/v1/competitions/{PRIVATE_COMPETITION}",
                headers=headers,
                params={"token": token},  # a token where it does not belong
            )
        malformed = await client.get(
            f"{ingest}/api/v1/competitions", headers={"Authorization": f"Basic {good_admin}"}
        )
        assert malformed.status_code == 401
    notifier = stack.urls["notifier"]
    async with connect(ws_url(notifier, PRIVATE_COMPETITION, f"token={good_reader}")) as ws:
        assert (await receive(ws))["type"] == "snapshot"
    async with connect(
        ws_url(notifier, PRIVATE_COMPETITION),
        subprotocols=["bearer", good_reader],  # type: ignore[list-item]
    ) as ws:
        assert (await receive(ws))["type"] == "snapshot"
    for token in bad:
        async with connect(ws_url(notifier, PRIVATE_COMPETITION, f"token={token}")) as ws:
            assert (await closed_with(ws))[0] == 1008

    logs = {name: path.read_text(encoding="utf-8") for name, path in stack.logs.items()}
    assert all(logs.values()), "the services wrote logs"
    assert "[redacted]" in logs["notifier"], "the ?token= of the sockets above was masked"
    secrets = {"the JWT secret": TEST_JWT_SECRET}
    for index, token in enumerate(stack.tokens):
        secrets[f"token #{index} ({token[:12]}…)"] = token
        signature = token.rsplit(".", 1)[-1]
        if len(signature) >= 16:
            secrets[f"signature of token #{index}"] = signature
    leaks = [
        f"{what} in {service}.log"
        for service, text in logs.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert not leaks, leaks
