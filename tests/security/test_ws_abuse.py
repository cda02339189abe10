"""WebSocket abuse the notifier's own tests (tests/e2e/test_notifier_ws.py) do not cover:
an oversized message sent in fragments, binary garbage, floods of invalid frames, an
oversized handshake, all at once on one competition, while a bystander keeps its updates."""

from __future__ import annotations

import asyncio
import time

from tests.security.conftest import Stack
from tests.support.notifier_clients import closed_with, connect, leaders, receive, ws_url
from tests.support.notifier_driver import ranker_stand_in


async def test_abusive_clients_are_closed_and_a_bystander_keeps_its_updates(
    stack: Stack,
) -> None:
    settings = stack.settings
    limit = settings.ws_max_message_bytes
    async with ranker_stand_in(settings) as ranker:
        competition = await ranker.competition("ws-abuse")
        await ranker.set_scores(competition, {"ann": 10.0})
        url = ws_url(stack.urls["notifier"], competition.id)
        async with (
            connect(url) as bystander,
            connect(url) as fragmenter,
            connect(url) as binary_flooder,
            connect(url) as garbage_flooder,
        ):
            for ws in (bystander, fragmenter, binary_flooder, garbage_flooder):
                assert (await receive(ws))["type"] == "snapshot"

            # one message over the limit, in fragments each well under it: five quarters, so
            # the limit is crossed by the last fragment (the server closes on it; a fragment
            # sent after that close would be a broken pipe here, as a CI run saw)
            fragment = "x" * (limit // 4)
            await fragmenter.send([fragment] * 5)
            # binary garbage (invalid UTF-8) is answered with an error, not a crash ...
            await binary_flooder.send(b"\xff\xfe\x00\x80" * 8)
            reply = await receive(binary_flooder)
            assert reply["type"] == "error"
            assert reply["error"]["code"] == "bad_request"
            # ... and a flood of it (or of invalid JSON text) closes the sender
            for _ in range(4 * settings.ws_client_message_burst):
                await binary_flooder.send(b"\xff" * 64)
                await garbage_flooder.send('{"type": "resync"' * 4)

            published_at = time.monotonic()
            await ranker.set_scores(competition, {"bob": 20.0})
            update = await receive(bystander, timeout_s=1.0)
            assert time.monotonic() - published_at < 1.0
            assert leaders(update) == [("bob", 20.0), ("ann", 10.0)]

            closes = await asyncio.gather(
                closed_with(fragmenter), closed_with(binary_flooder), closed_with(garbage_flooder)
            )
            assert closes[0][0] == 1009
            # flooding: too many messages, or (errors being answered) replies not read
            for code, reason, _ in closes[1:]:
                assert code == 1008
                assert reason in ("too many messages; slow down", "replies are not being read")

            # the bystander is still served after the attackers are gone
            await ranker.set_scores(competition, {"cat": 30.0})
            later = await receive(bystander, timeout_s=1.0)
            assert leaders(later)[0] == ("cat", 30.0)


async def test_oversized_handshake_values_are_refused_with_1008(stack: Stack) -> None:
    notifier = stack.urls["notifier"]
    async with ranker_stand_in(stack.settings) as ranker:
        competition = await ranker.competition("ws-handshake")
    for query in (f"token={'t' * 5000}", f"window={'w' * 5000}", f"user={'u' * 65}"):
        async with connect(ws_url(notifier, competition.id, query)) as ws:
            code, _, frames = await closed_with(ws)
        assert code == 1008, query[:20]
        assert all(frame["type"] == "error" for frame in frames)
