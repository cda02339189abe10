"""Forged, stale and over-reaching tokens against the running ingest, query and notifier.

tests/unit/test_auth.py covers the verifier itself; here every token goes through HTTP (and the
notifier's WebSocket handshake), the way an attacker would send it.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.security.conftest import OPEN_COMPETITION, PRIVATE_COMPETITION, Stack
from tests.security.forged_tokens import RsaKey, hmac_token, hs256, unsigned, valid_claims
from tests.security.observe import published
from tests.support.notifier_clients import closed_with, connect, receive, ws_url

ATTACKER = "mallory"
EVERYTHING = "admin leaderboards:read scores:write scores:write:any"
SECRET = TEST_JWT_SECRET.encode()


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> RsaKey:
    return RsaKey(tmp_path_factory.mktemp("rsa"))


def _claims(stack: Stack, **changes: Any) -> dict[str, Any]:
    return valid_claims(stack.settings.jwt_issuer, ATTACKER, EVERYTHING, **changes)


def _swap_header(token: str, header_token: str) -> str:
    """``token``'s claims and signature under the header of ``header_token``."""
    _, claims, signature = token.split(".")
    return f"{header_token.split('.')[0]}.{claims}.{signature}"


def _swap_claims(token: str, claims_token: str) -> str:
    """``token``'s header and signature over the claims of ``claims_token``."""
    header, _, signature = token.split(".")
    return f"{header}.{claims_token.split('.')[1]}.{signature}"


TokenMaker = Callable[[Stack, RsaKey], str]
NOW = int(time.time())
FORGERIES: dict[str, TokenMaker] = {
    "alg none": lambda s, _: unsigned(_claims(s)),
    "alg None": lambda s, _: unsigned(_claims(s), "None"),
    "alg NONE": lambda s, _: unsigned(_claims(s), "NONE"),
    "alg none keeping a real signature": lambda s, _: _swap_header(
        hs256(_claims(s, scope="scores:write"), SECRET), unsigned(_claims(s))
    ),
    "RS256 signed by an attacker key": lambda s, key: key.rs256(_claims(s)),
    "HS256 keyed with a PEM public key": lambda s, key: hs256(_claims(s), key.public_pem),
    "HS512 with the right secret": lambda s, _: hmac_token(_claims(s), SECRET, "HS512"),
    "wrong secret": lambda s, _: hs256(_claims(s), b"not-the-secret-but-long-enough-000000"),
    "empty secret": lambda s, _: hs256(_claims(s), b""),
    "kid path traversal with an empty key": lambda s, _: hs256(
        _claims(s), b"", kid="../../../../../dev/null"
    ),
    "embedded jwk header": lambda s, _: hs256(_claims(s), b"k", jwk={"kty": "oct", "k": "aw"}),
    "claims swapped under a real signature": lambda s, _: _swap_claims(
        hs256(_claims(s, scope="scores:write"), SECRET), hs256(_claims(s), b"x")
    ),
    "truncated signature": lambda s, _: hs256(_claims(s), SECRET)[:-4],
    "expired": lambda s, _: hs256(_claims(s, iat=NOW - 900, nbf=NOW - 900, exp=NOW - 120), SECRET),
    "not yet valid": lambda s, _: hs256(_claims(s, nbf=int(time.time()) + 300), SECRET),
    "missing sub": lambda s, _: hs256(_claims(s, sub=None), SECRET),
    "missing scope": lambda s, _: hs256(_claims(s, scope=None), SECRET),
    "missing exp": lambda s, _: hs256(_claims(s, exp=None), SECRET),
    "missing iat": lambda s, _: hs256(_claims(s, iat=None), SECRET),
    "missing iss": lambda s, _: hs256(_claims(s, iss=None), SECRET),
    "wrong issuer": lambda s, _: hs256(_claims(s, iss="evil-issuer"), SECRET),
    "sub not a string": lambda s, _: hs256(_claims(s, sub=1234), SECRET),
    "empty sub": lambda s, _: hs256(_claims(s, sub=""), SECRET),
    "scope as a list": lambda s, _: hs256(_claims(s, scope=["admin"]), SECRET),
    "not a JWT": lambda s, _: "definitely.not.a-token",
}


def _score(user_id: str, event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "competition_id": OPEN_COMPETITION,
        "user_id": user_id,
        "value": 1_000_000,
    }


def _assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthenticated"
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_forged_and_stale_tokens_get_401_everywhere(
    stack: Stack, rsa_key: RsaKey, forgery: str
) -> None:
    token = stack.remember(FORGERIES[forgery](stack, rsa_key))
    headers = {"Authorization": f"Bearer {token}"}
    event_id = f"forged-{abs(hash(forgery))}"
    async with httpx.AsyncClient(timeout=20, headers=headers) as client:
        ingest, query = stack.urls["ingest"], stack.urls["query"]
        _assert_401(await client.post(f"{ingest}/api/v1/scores", json=_score(ATTACKER, event_id)))
        _assert_401(
            await client.post(
                f"{ingest}/api/v1/scores/batch", json={"events": [_score(ATTACKER, event_id)]}
            )
        )
        _assert_401(await client.get(f"{ingest}/api/v1/competitions"))
        _assert_401(
            await client.post(f"{ingest}/api/v1/competitions", json={"id": "x", "name": "x"})
        )
        _assert_401(await client.get(f"{query}/api/v1/competitions/{PRIVATE_COMPETITION}"))
        _assert_401(await client.get(f"{query}/api/v1/leaderboards/{PRIVATE_COMPETITION}/top"))
        _assert_401(await client.get(f"{query}/api/v1/competitions"))
    url = ws_url(stack.urls["notifier"], PRIVATE_COMPETITION, f"token={token}")
    async with connect(url) as ws:
        code, _, frames = await closed_with(ws)
    assert code == 1008
    assert all(frame.get("type") == "error" for frame in frames), "no data before the close"
    bearer_subprotocol = ws_url(stack.urls["notifier"], PRIVATE_COMPETITION)
    async with connect(bearer_subprotocol, subprotocols=["bearer", token]) as ws:
        code, _, frames = await closed_with(ws)
    assert code == 1008
    assert all(frame.get("type") == "error" for frame in frames)
    assert event_id not in {event.event_id for event in await published(stack.settings)}


ESCALATIONS: dict[str, dict[str, Any]] = {
    "plain player": {},
    "admin smuggled in scp": {"scp": "admin"},
    "admin smuggled in scopes": {"scopes": ["admin", "scores:write:any"]},
    "admin smuggled in roles": {"roles": ["admin"], "role": "admin", "admin": True},
    "comma-joined scope": {"scope": "scores:write,admin"},
    "upper-case ADMIN": {"scope": "scores:write ADMIN Admin"},
    "scope with a lookalike": {"scope": "scores:write \u0430dmin admin\u200b"},
    "prefix of a scope": {"scope": "scores:write adm scores:write:"},
}


@pytest.mark.parametrize("escalation", list(ESCALATIONS))
async def test_scope_escalation_is_403_and_publishes_nothing(stack: Stack, escalation: str) -> None:
    subject = f"player-{abs(hash(escalation)) % 10**6}"
    claims = valid_claims(stack.settings.jwt_issuer, subject, "scores:write")
    claims.update(ESCALATIONS[escalation])
    token = stack.remember(hs256(claims, SECRET))
    ingest = stack.urls["ingest"]
    admin_calls = [
        ("GET", "/api/v1/competitions", None),
        ("POST", "/api/v1/competitions", {"id": f"esc-{subject}", "name": "escalated"}),
        ("GET", f"/api/v1/competitions/{OPEN_COMPETITION}", None),
        ("PATCH", f"/api/v1/competitions/{OPEN_COMPETITION}", {"name": "pwned"}),
        ("DELETE", f"/api/v1/competitions/{OPEN_COMPETITION}/users/victim", None),
        ("POST", f"/api/v1/competitions/{OPEN_COMPETITION}/users/victim/ban", None),
    ]
    async with httpx.AsyncClient(
        base_url=ingest, timeout=20, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for method, path, body in admin_calls:
            response = await client.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["code"] == "forbidden"
        other_user = await client.post(
            "/api/v1/scores", json=_score("victim", f"esc-other-{subject}")
        )
        assert other_user.status_code == 403, other_user.text
        batch = await client.post(
            "/api/v1/scores/batch",
            json={"events": [_score("victim", f"esc-batch-{subject}")]},
        )
        assert batch.status_code in (202, 403), batch.text
        if batch.status_code == 202:
            assert batch.json()["results"][0]["status"] != "accepted", batch.text
        own = await client.post("/api/v1/scores", json=_score(subject, f"esc-own-{subject}"))
        # the token itself is good: only the escalation fails (unless the scope is mangled)
        may_write = "scores:write" in str(claims["scope"]).split()
        assert own.status_code == (202 if may_write else 403), own.text
    async with httpx.AsyncClient(timeout=20) as client:
        hidden = await client.get(
            f"{stack.urls['query']}/api/v1/competitions/{PRIVATE_COMPETITION}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert hidden.status_code == 404, hidden.text  # private: not even its existence
    private = ws_url(stack.urls["notifier"], PRIVATE_COMPETITION, f"token={token}")
    async with connect(private) as ws:
        code, _, frames = await closed_with(ws)
    assert code == 1008
    assert all(frame.get("type") == "error" for frame in frames)

    event_ids = {event.event_id for event in await published(stack.settings)}
    assert (f"esc-own-{subject}" in event_ids) is may_write
    assert not {f"esc-other-{subject}", f"esc-batch-{subject}"} & event_ids
    unchanged = await _competition(stack, OPEN_COMPETITION)
    assert unchanged["name"] == OPEN_COMPETITION


async def test_a_token_accepted_while_valid_is_refused_once_expired(stack: Stack) -> None:
    """Also after it was used (verified tokens may be cached by the services)."""
    token = stack.token("short-lived", "admin", ttl_s=2)
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    headers = {"Authorization": f"Bearer {token}"}
    urls = [
        f"{stack.urls['ingest']}/api/v1/competitions",
        f"{stack.urls['query']}/api/v1/competitions/{PRIVATE_COMPETITION}",
    ]
    async with httpx.AsyncClient(timeout=20, headers=headers) as client:
        for url in urls:
            assert (await client.get(url)).status_code == 200
        await asyncio.sleep(max(0.0, expires_at + 1 - time.time()))
        for url in urls:
            _assert_401(await client.get(url))
    private = ws_url(stack.urls["notifier"], PRIVATE_COMPETITION, f"token={token}")
    async with connect(private) as ws:
        assert (await closed_with(ws))[0] == 1008


async def test_reader_token_reads_private_but_writes_nothing(stack: Stack) -> None:
    reader = stack.bearer("reader", "leaderboards:read")
    async with httpx.AsyncClient(timeout=20, headers=reader) as client:
        allowed = await client.get(
            f"{stack.urls['query']}/api/v1/competitions/{PRIVATE_COMPETITION}"
        )
        assert allowed.status_code == 200, allowed.text
        write = await client.post(
            f"{stack.urls['ingest']}/api/v1/scores", json=_score("reader", "reader-write")
        )
        assert write.status_code == 403, write.text
    url = ws_url(
        stack.urls["notifier"], PRIVATE_COMPETITION, f"token={reader['Authorization'][7:]}"
    )
    async with connect(url) as ws:
        assert (await receive(ws))["type"] == "snapshot"


async def _competition(stack: Stack, competition_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=20, headers=stack.bearer("sec-admin", "admin")) as client:
        response = await client.get(f"{stack.urls['ingest']}/api/v1/competitions/{competition_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_rs256_forgery_is_a_genuine_rs256_token(rsa_key: RsaKey, tmp_path: Path) -> None:
    """The RS256 forgery verifies with the attacker's public key, so its 401 means something."""
    token = rsa_key.rs256({"sub": "x"})
    header, claims, signature = token.split(".")
    signature_path = tmp_path / "signature"
    signature_path.write_bytes(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    verified = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", str(rsa_key.public_path),
         "-signature", str(signature_path)],
        input=f"{header}.{claims}".encode(), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
