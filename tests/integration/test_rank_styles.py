"""Rank styles, percentiles and paging (prev_cursor, from_rank) against the oracle.

Standings with many ties go through the ranker's write path (rebuild, then incremental
writes and removals that exercise the distinct-scores bookkeeping), and every read of the
query service is compared with :func:`tests.support.query_seed.expected_order`, which counts
ranks from their definitions.
"""

# ruff: noqa: F811 - the fixtures imported from the other modules are test parameters here
from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest

from services.query.schemas import Neighbourhood, TopPage, UsersRanks, UserStanding
from shared.leaderboard import redis_score
from shared.leaderboard_store import CompetitionNotBuiltError, Staleness, StandingWrite
from shared.redis_keys import distinct_key
from shared.schemas.competition import Competition, RankStyle, SortOrder
from tests.integration.test_ingest_scores import admin, client  # noqa: F401 - fixtures
from tests.integration.test_query_reads import QueryHarness, harness  # noqa: F401 - fixture
from tests.support.query_seed import (
    T0,
    Row,
    expected_order,
    make_rows,
    seed_competition,
    seed_standings,
    set_standing,
)
from tests.support.standings import write_as_ranker

STYLES = [RankStyle.UNIQUE, RankStyle.STANDARD, RankStyle.DENSE]


async def remove_standing(harness: QueryHarness, competition: Competition, user_id: str) -> None:
    """The ranker's removal: delete the PostgreSQL row, then the Redis member."""
    await harness.pool.execute(
        "DELETE FROM standings WHERE competition_id = $1 AND window_label = 'alltime'"
        " AND user_id = $2",
        competition.id,
        user_id,
    )
    await write_as_ranker(
        harness.pool,
        harness.store,
        competition.id,
        competition.sort_order,
        {"alltime": [StandingWrite(user_id, None, None)]},
    )


async def walk(
    harness: QueryHarness, cid: str, limit: int, *, direction: str = "next", **start: Any
) -> list[TopPage]:
    """Every page from the first one (``start``: its query parameters) following a cursor."""
    pages: list[TopPage] = []
    query: dict[str, Any] = {"limit": limit, **start}
    while True:
        response = await harness.get(f"/api/v1/leaderboards/{cid}/top", params=query)
        assert response.status_code == 200, response.text
        page = TopPage.model_validate(response.json())
        pages.append(page)
        cursor = page.next_cursor if direction == "next" else page.prev_cursor
        if cursor is None:
            return pages
        query = {"limit": limit, "cursor": cursor}


def dumped(pages: list[TopPage]) -> list[dict[str, Any]]:
    return [entry.model_dump() for page in pages for entry in page.entries]


@pytest.mark.parametrize("sort_order", [SortOrder.DESC, SortOrder.ASC])
@pytest.mark.parametrize("style", STYLES)
async def test_every_read_matches_the_oracle_in_each_style(
    harness: QueryHarness, style: RankStyle, sort_order: SortOrder
) -> None:
    cid = f"style-{style.value}-{sort_order.value}"
    competition = await seed_competition(
        harness.pool, id=cid, sort_order=sort_order, rank_style=style
    )
    rows = {row.user_id: row for row in make_rows("alltime", 60, ties_every=5)}
    await seed_standings(harness.pool, harness.store, competition, list(rows.values()))
    # incremental writes: into a tie, a new distinct score, out of the only holder of a
    # score (twice, so the score leaves the distinct set), and removals
    later = T0 + timedelta(minutes=5)
    changes = [
        Row("alltime", "u0003", 2.0, later),
        Row("alltime", "u0010", 7.5, later),
        Row("alltime", "u0011", 7.5, later + timedelta(seconds=1)),
        Row("alltime", "u0012", -3.0, later),
        Row("alltime", "u0012", 9.0, later + timedelta(seconds=2)),
        Row("alltime", "u0011", 1.0, later + timedelta(seconds=3)),
    ]
    for change in changes:
        await set_standing(harness.pool, harness.store, competition, change)
        rows[change.user_id] = change
    for user_id in ("u0010", "u0020"):
        await remove_standing(harness, competition, user_id)
        del rows[user_id]
    expected = expected_order(list(rows.values()), "alltime", sort_order, style, percentiles=True)
    plain = [{k: v for k, v in entry.items() if k != "percentile"} for entry in expected]
    total = len(expected)

    # the distinct-scores set holds exactly the scores in use (7.5 and -3.0 left it)
    distinct = await harness.store.redis.zrange(
        distinct_key(harness.settings.redis_key_prefix, cid, "alltime"), 0, -1, withscores=True
    )
    assert sorted(score for _, score in distinct) == sorted(
        {redis_score(row.score, sort_order) for row in rows.values()}
    )
    if style is not RankStyle.UNIQUE:
        assert len({entry["rank"] for entry in expected}) < total  # the ties are real

    forward = await walk(harness, cid, 7)
    assert dumped(forward) == plain
    assert {page.total for page in forward} == {total}
    assert forward[0].prev_cursor is None
    # back from the last page: the same pages, in reverse
    backward = await walk(harness, cid, 7, direction="prev", cursor=forward[-1].prev_cursor)
    assert [dumped([page]) for page in backward] == [dumped([page]) for page in forward[-2::-1]]

    max_rank = expected[-1]["rank"]
    for wanted in range(1, max_rank + 2):
        response = await harness.get(
            f"/api/v1/leaderboards/{cid}/top", params={"from_rank": wanted, "limit": 3}
        )
        page = TopPage.model_validate(response.json())
        first = next((i for i, e in enumerate(plain) if e["rank"] >= wanted), total)
        assert [e.model_dump() for e in page.entries] == plain[first : first + 3], wanted
        assert (page.prev_cursor is None) == (first == 0 or first >= total)
        if page.next_cursor is not None:  # and a cursor from there goes on seamlessly
            rest = await walk(harness, cid, 5, cursor=page.next_cursor)
            assert dumped(rest) == plain[first + 3 :]

    for index, entry in enumerate(expected):
        response = await harness.get(f"/api/v1/leaderboards/{cid}/users/{entry['user_id']}")
        standing = UserStanding.model_validate(response.json())
        assert (standing.rank, standing.total) == (entry["rank"], total)
        assert standing.percentile == pytest.approx(entry["percentile"])
        if index % 9 == 0:
            response = await harness.get(
                f"/api/v1/leaderboards/{cid}/around/{entry['user_id']}", params={"radius": 4}
            )
            around = Neighbourhood.model_validate(response.json())
            assert [e.model_dump() for e in around.entries] == plain[max(0, index - 4) : index + 5]
            assert (around.rank, around.total) == (entry["rank"], total)
            assert around.percentile == pytest.approx(entry["percentile"])

    wanted_users = [expected[i]["user_id"] for i in (40, 3, 4, 0, 25)] + ["ghost"]
    response = await harness.get(
        f"/api/v1/leaderboards/{cid}/users", params={"ids": ",".join(wanted_users)}
    )
    friends = UsersRanks.model_validate(response.json())
    assert [e.model_dump() for e in friends.entries] == [
        pytest.approx(expected[i]) for i in (0, 3, 4, 25, 40)
    ]
    assert friends.absent == ["ghost"]


async def test_pages_neither_skip_nor_repeat_a_user_who_did_not_move(
    harness: QueryHarness,
) -> None:
    cid = "paging-live"
    competition = await seed_competition(harness.pool, id=cid, rank_style=RankStyle.STANDARD)
    rows = make_rows("alltime", 150, ties_every=11)
    await seed_standings(harness.pool, harness.store, competition, rows)
    movers = {row.user_id for row in random.Random(7).sample(rows, 25)}
    steady = [
        entry["user_id"]
        for entry in expected_order(rows, "alltime", SortOrder.DESC)
        if entry["user_id"] not in movers
    ]
    stop = asyncio.Event()

    async def keep_moving() -> int:
        rng = random.Random(11)
        writes = 0
        while not stop.is_set():
            user = rng.choice(sorted(movers))
            moment = T0 + timedelta(minutes=10 + writes)
            row = Row("alltime", user, float(rng.randrange(-2, 14)), moment)
            await set_standing(harness.pool, harness.store, competition, row)
            writes += 1
            await asyncio.sleep(0)
        return writes

    mover = asyncio.create_task(keep_moving())
    try:
        for direction in ("next", "prev"):
            for _round in range(3):
                if direction == "next":
                    pages = await walk(harness, cid, 9)
                else:  # from the last page back to the first
                    last = await harness.get(
                        f"/api/v1/leaderboards/{cid}/top", params={"from_rank": 150, "limit": 9}
                    )
                    cursor = TopPage.model_validate(last.json()).prev_cursor
                    if cursor is None:  # the last user moved to the top meanwhile: rare
                        continue
                    pages = (await walk(harness, cid, 9, direction="prev", cursor=cursor))[::-1]
                seen = [e.user_id for page in pages for e in page.entries]
                seen_steady = [user for user in seen if user not in movers]
                if direction == "prev":  # the from_rank page itself was not walked
                    assert seen_steady == steady[: len(seen_steady)]
                    assert len(seen_steady) >= len(steady) - 9
                else:
                    assert seen_steady == steady
    finally:
        stop.set()
        writes = await mover
    assert writes > 0


async def test_bad_from_rank_is_a_400_naming_the_field(harness: QueryHarness) -> None:
    await seed_competition(harness.pool, id="bad-rank")
    first = await harness.get("/api/v1/leaderboards/bad-rank/top", params={"limit": 1})
    for params in (
        {"from_rank": "0"},
        {"from_rank": "-1"},
        {"from_rank": "x"},
        {"from_rank": "1000000000"},
        {"from_rank": "2", "cursor": first.json()["next_cursor"] or "abc.def"},
    ):
        response = await harness.get("/api/v1/leaderboards/bad-rank/top", params=params)
        assert response.status_code == 400, params
        error = response.json()["error"]
        assert error["code"] == "bad_request"
        assert error["details"]["field"] == "from_rank"


async def test_a_window_built_before_distinct_scores_is_rebuilt(harness: QueryHarness) -> None:
    cid = "layout"
    competition = await seed_competition(harness.pool, id=cid, rank_style=RankStyle.DENSE)
    rows = make_rows("alltime", 20, ties_every=4)
    await seed_standings(harness.pool, harness.store, competition, rows)
    dkey = distinct_key(harness.settings.redis_key_prefix, cid, "alltime")
    await harness.store.redis.delete(dkey)  # as an index built by an older Podium
    with pytest.raises(CompetitionNotBuiltError) as refused:
        await write_as_ranker(
            harness.pool,
            harness.store,
            cid,
            SortOrder.DESC,
            {"alltime": [StandingWrite("u0001", 3.0, T0)]},
        )
    assert refused.value.staleness is Staleness.BEHIND
    page = TopPage.model_validate(
        (await harness.get(f"/api/v1/leaderboards/{cid}/top", params={"limit": 100})).json()
    )
    expected = expected_order(rows, "alltime", SortOrder.DESC, RankStyle.DENSE)
    assert [e.model_dump() for e in page.entries] == expected
    assert await harness.store.redis.exists(dkey)


async def test_rank_style_is_set_at_creation_and_by_patch(
    client: httpx.AsyncClient,
    admin: dict[str, str],
) -> None:
    created = await client.post(
        "/api/v1/competitions",
        json={"id": "styled", "name": "Styled", "rank_style": "dense"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["rank_style"] == "dense"
    default = await client.post(
        "/api/v1/competitions", json={"id": "plain", "name": "Plain"}, headers=admin
    )
    assert default.json()["rank_style"] == "unique"
    patched = await client.patch(
        "/api/v1/competitions/styled", json={"rank_style": "standard"}, headers=admin
    )
    assert patched.status_code == 200
    assert patched.json()["rank_style"] == "standard"
    read = await client.get("/api/v1/competitions/styled", headers=admin)
    assert read.json()["rank_style"] == "standard"
    for body in ({"rank_style": "olympic"}, {"rank_style": None}):
        refused = await client.patch("/api/v1/competitions/styled", json=body, headers=admin)
        assert refused.status_code == 422, body
        assert "rank_style" in {item["field"] for item in refused.json()["error"]["details"]}
