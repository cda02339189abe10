"""Rank styles and movement in WebSocket frames, over the real broker, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from podium.settings import PlatformSettings
from services.notifier.app import create_app
from shared.competitions import update_competition
from shared.schemas.competition import CompetitionUpdate, RankStyle
from tests.support.notifier_clients import connect, receive, ws_url
from tests.support.notifier_driver import RankerStandIn, ranker_stand_in
from tests.support.servers import running_app


@pytest.fixture
async def ranker(settings: PlatformSettings) -> AsyncIterator[RankerStandIn]:
    async with ranker_stand_in(settings) as stand_in:
        yield stand_in


def ranks(frame: dict[str, Any]) -> list[tuple[str, int]]:
    return [(entry["user_id"], entry["rank"]) for entry in frame["top"]]


def movement(frame: dict[str, Any]) -> list[tuple[str, int, int | None]]:
    return [(e["user_id"], e["rank"], e["previous_rank"]) for e in frame["top"]]


async def test_dense_frames_carry_previous_ranks_and_me_previous_rank(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    competition = await ranker.competition("dense-ws", rank_style=RankStyle.DENSE)
    await ranker.set_scores(competition, {"ann": 50, "bob": 50})
    await ranker.set_scores(competition, {"cat": 40, "dan": 30})
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "dense-ws", "top=5&user=dan")) as ws,
    ):
        snapshot = await receive(ws)
        assert ranks(snapshot) == [("ann", 1), ("bob", 1), ("cat", 2), ("dan", 3)]
        assert all("previous_rank" not in entry for entry in snapshot["top"])
        assert snapshot["me"] == {"rank": 3, "score": 30.0}

        await ranker.set_scores(competition, {"cat": 50})  # cat joins the tie, reached last
        update = await receive(ws)
        assert movement(update) == [
            ("ann", 1, 1),
            ("bob", 1, 1),
            ("cat", 1, 2),
            ("dan", 2, 3),
        ]
        assert update["me"] == {"rank": 2, "score": 30.0, "previous_rank": 3}

        await ranker.set_scores(competition, {"eve": 60})  # a newcomer enters at the top
        update = await receive(ws)
        assert movement(update) == [
            ("eve", 1, None),
            ("ann", 2, 1),
            ("bob", 2, 1),
            ("cat", 2, 1),
            ("dan", 3, 2),
        ]
        assert update["me"] == {"rank": 3, "score": 30.0, "previous_rank": 2}


async def test_standard_frames_share_a_rank_and_skip_the_next(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    competition = await ranker.competition("standard-ws", rank_style=RankStyle.STANDARD)
    await ranker.set_scores(competition, {"ann": 50, "bob": 50, "cat": 40})
    async with (
        running_app(create_app(settings), settings) as base_url,
        connect(ws_url(base_url, "standard-ws", "top=2&user=cat")) as ws,
    ):
        snapshot = await receive(ws)
        assert ranks(snapshot) == [("ann", 1), ("bob", 1)]
        assert snapshot["me"] == {"rank": 3, "score": 40.0}  # outside the top: from Redis
        await ranker.set_scores(competition, {"dan": 45})
        update = await receive(ws)
        assert "top" not in update  # the top two did not change
        assert update["me"] == {"rank": 4, "score": 40.0, "previous_rank": 3}
        await ranker.set_scores(competition, {"dan": 55})
        update = await receive(ws)
        # dan was third in the previous version (outside this client's top, inside the
        # board's): previous_rank says where from
        assert movement(update) == [("dan", 1, 3), ("ann", 2, 1)]
        assert "me" not in update  # cat is still fourth


async def test_a_changed_rank_style_reaches_connected_clients(
    settings: PlatformSettings, ranker: RankerStandIn
) -> None:
    fast = settings.model_copy(update={"competition_cache_ttl_s": 0.2})
    competition = await ranker.competition("restyled")
    await ranker.set_scores(competition, {"ann": 50, "bob": 50, "cat": 40})
    async with (
        running_app(create_app(fast), fast) as base_url,
        connect(ws_url(base_url, "restyled", "top=5")) as ws,
    ):
        assert ranks(await receive(ws)) == [("ann", 1), ("bob", 2), ("cat", 3)]
        # what PATCH /api/v1/competitions/restyled {"rank_style": "dense"} writes
        await update_competition(
            ranker.pool, "restyled", CompetitionUpdate(rank_style=RankStyle.DENSE)
        )
        await asyncio.sleep(0.5)  # past the notifier's competition cache TTL
        await ranker.set_scores(competition, {"dan": 10})
        update = await receive(ws)
        # re-ranked in the new style; the style change itself is no movement
        assert movement(update) == [
            ("ann", 1, 1),
            ("bob", 1, 1),
            ("cat", 2, 2),
            ("dan", 3, None),
        ]
