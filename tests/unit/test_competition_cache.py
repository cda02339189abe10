"""The one competition cache (ingest, query, notifier): TTL, single flight, batches, stale on
PostgreSQL failure, bound, negative entries, invalidation. PostgreSQL is a fake here."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

import asyncpg
import pytest

from shared.competition_cache import MAX_ENTRIES, CompetitionCache
from shared.errors import DependencyUnavailableError
from shared.schemas.competition import (
    Competition,
    Operator,
    ResetSchedule,
    SortOrder,
    Visibility,
)

T0 = datetime(2026, 11, 25, tzinfo=UTC)
TTL_S = 10.0


def competition(competition_id: str, name: str = "cup") -> Competition:
    return Competition(
        id=competition_id,
        name=name,
        sort_order=SortOrder.DESC,
        operator=Operator.BEST,
        reset=ResetSchedule.NONE,
        timezone="UTC",
        starts_at=None,
        ends_at=None,
        max_value=None,
        visibility=Visibility.PUBLIC,
        created_at=T0,
        updated_at=T0,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePostgres:
    """The competitions table, counting queries; ``failure`` makes queries raise it;
    ``gate`` (when set) holds every query until it is set."""

    def __init__(self, *competitions: Competition) -> None:
        self.rows = {c.id: c for c in competitions}
        self.queries: list[list[str]] = []
        self.failure: BaseException | None = None
        self.gate: asyncio.Event | None = None

    async def fetch(self, competition_ids: list[str]) -> Mapping[str, Competition]:
        self.queries.append(sorted(competition_ids))
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        return {cid: self.rows[cid] for cid in competition_ids if cid in self.rows}


def cache_over(
    postgres: FakePostgres, clock: Clock, *, max_entries: int = MAX_ENTRIES
) -> CompetitionCache:
    return CompetitionCache(postgres.fetch, ttl_s=TTL_S, max_entries=max_entries, clock=clock)


async def test_entries_and_unknown_ids_are_cached_for_the_ttl() -> None:
    postgres, clock = FakePostgres(competition("a")), Clock()
    cache = cache_over(postgres, clock)
    assert cache.cached("a") is None  # a peek never loads
    assert (await cache.get("a")) == competition("a")
    assert await cache.get("ghost") is None
    assert cache.cached("a") == competition("a")
    clock.now += TTL_S - 0.1
    assert await cache.get("a") == competition("a")
    assert await cache.get("ghost") is None  # negative entries are cached too
    assert postgres.queries == [["a"], ["ghost"]]
    clock.now += TTL_S + 0.1
    assert cache.cached("a") is None
    await cache.get("ghost")
    # "a" expired more than a TTL ago unread: not refreshed with the miss
    assert postgres.queries[-1] == ["ghost"]


async def test_concurrent_misses_share_one_query_and_a_batch_is_one_query() -> None:
    postgres, clock = FakePostgres(competition("a"), competition("b")), Clock()
    cache = cache_over(postgres, clock)
    postgres.gate = asyncio.Event()
    singles = [asyncio.create_task(cache.get("a")) for _ in range(20)]
    batch = asyncio.create_task(cache.get_many(["a", "b", "c", "b"]))
    await asyncio.sleep(0)
    postgres.gate.set()
    assert await asyncio.gather(*singles) == [competition("a")] * 20
    assert await batch == {"a": competition("a"), "b": competition("b"), "c": None}
    # every miss of that loop turn went into the first query
    assert postgres.queries == [["a", "b", "c"]]
    # a lookup arriving while a query is in flight joins it for its id, and loads only
    # what nobody is loading
    postgres.queries.clear()
    clock.now += TTL_S * 3
    postgres.gate = asyncio.Event()
    first = asyncio.create_task(cache.get("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the query for "a" is in flight
    later = asyncio.create_task(cache.get_many(["a", "b"]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    postgres.gate.set()
    assert await first == competition("a")
    assert await later == {"a": competition("a"), "b": competition("b")}
    assert postgres.queries == [["a"], ["b"]]


async def test_a_cold_start_of_many_competitions_is_one_query() -> None:
    hot = [competition(f"c{index}") for index in range(200)]
    postgres, clock = FakePostgres(*hot), Clock()
    cache = cache_over(postgres, clock)
    requests = [asyncio.create_task(cache.get(c.id)) for c in hot]  # one loop turn's requests
    assert await asyncio.gather(*requests) == hot
    assert len(postgres.queries) == 1  # before: 200


async def test_a_miss_refreshes_entries_past_half_their_ttl() -> None:
    postgres, clock = FakePostgres(competition("old"), competition("young")), Clock()
    cache = cache_over(postgres, clock)
    await cache.get("old")
    clock.now += TTL_S * 0.4
    await cache.get("young")
    clock.now += TTL_S * 0.2  # "old" is past half its TTL, "young" is not
    await cache.get("new")
    assert postgres.queries[-1] == ["new", "old"]
    clock.now += TTL_S * 0.6  # past the first load's TTL: "old" is fresh only if refreshed
    postgres.queries.clear()
    assert await cache.get("old") == competition("old")
    assert postgres.queries == []


async def test_entries_loaded_together_and_expired_together_reload_in_one_query() -> None:
    hot = [competition(f"c{index}") for index in range(50)]
    postgres, clock = FakePostgres(*hot), Clock()
    cache = cache_over(postgres, clock)
    await cache.get_many([c.id for c in hot])  # one query: one expiry instant for all 50
    for _ in range(3):  # a few TTLs of steady traffic over every competition
        clock.now += TTL_S + 0.01  # all 50 expired at once
        postgres.queries.clear()
        for c in hot:
            assert await cache.get(c.id) == c
        # the first miss reloads the other 49 expired with it; before, 50 queries
        assert postgres.queries == [sorted(c.id for c in hot)]
    clock.now += TTL_S * 1.9  # traffic resumes after a pause of most of a TTL
    postgres.queries.clear()
    for c in hot:
        assert await cache.get(c.id) == c
    assert postgres.queries == [sorted(c.id for c in hot)]


async def test_postgres_failure_serves_stale_entries_else_503_and_backs_off() -> None:
    postgres, clock = FakePostgres(competition("a")), Clock()
    cache = cache_over(postgres, clock)  # back-off: 1 s
    await cache.get_many(["a", "ghost"])
    clock.now += TTL_S
    postgres.failure = ConnectionRefusedError("PostgreSQL is down")
    assert await cache.get_many(["a", "ghost"]) == {"a": competition("a"), "ghost": None}
    with pytest.raises(DependencyUnavailableError) as unavailable:
        await cache.get("never-seen")
    assert unavailable.value.retry_after_s == 1.0
    assert unavailable.value.code == "unavailable"
    with pytest.raises(DependencyUnavailableError):  # one unknown id fails the batch
        await cache.get_many(["a", "never-seen"])
    assert len(postgres.queries) == 2  # the failure, then nothing during the back-off
    clock.now += 1.0
    postgres.failure = None
    assert await cache.get("never-seen") is None
    assert len(postgres.queries) == 3


@pytest.mark.parametrize(
    "failure",
    [
        OSError("reset"),
        TimeoutError(),
        asyncpg.InterfaceError("closed"),
        asyncpg.QueryCanceledError("timeout"),
    ],
)
async def test_every_postgres_failure_is_a_dependency_failure(failure: Exception) -> None:
    postgres, clock = FakePostgres(), Clock()
    postgres.failure = failure
    with pytest.raises(DependencyUnavailableError):
        await cache_over(postgres, clock).get("a")


async def test_a_bug_is_not_mistaken_for_an_outage() -> None:
    postgres, clock = FakePostgres(competition("a")), Clock()
    cache = cache_over(postgres, clock)
    await cache.get("a")
    clock.now += TTL_S
    postgres.failure = ValueError("bug")
    with pytest.raises(ValueError, match="bug"):
        await cache.get("a")
    postgres.failure = None
    assert await cache.get("a") == competition("a")  # no back-off either


async def test_a_caller_with_stale_data_survives_a_shared_flight_that_failed() -> None:
    postgres, clock = FakePostgres(competition("a")), Clock()
    cache = cache_over(postgres, clock)
    await cache.get("a")
    clock.now += TTL_S
    postgres.failure = OSError("down")
    postgres.gate = asyncio.Event()
    batch = asyncio.create_task(cache.get_many(["a", "never-seen"]))
    await asyncio.sleep(0)
    single = asyncio.create_task(cache.get("a"))  # joins the batch's flight for "a"
    await asyncio.sleep(0)
    postgres.gate.set()
    assert await single == competition("a")
    with pytest.raises(DependencyUnavailableError):
        await batch
    assert postgres.queries == [["a"], ["a", "never-seen"]]  # the failed query was shared


async def test_size_is_bounded_least_recently_stored_first() -> None:
    postgres, clock = FakePostgres(), Clock()
    cache = cache_over(postgres, clock, max_entries=2)
    for cid in ("x1", "x2", "x3"):
        await cache.get(cid)
    postgres.queries.clear()
    await cache.get_many(["x2", "x3"])
    assert postgres.queries == []
    await cache.get("x1")
    assert postgres.queries == [["x1"]]


async def test_put_and_invalidate_apply_at_once_and_beat_a_load_in_flight() -> None:
    postgres, clock = FakePostgres(competition("a", "before")), Clock()
    cache = cache_over(postgres, clock)
    postgres.gate = asyncio.Event()
    loading = asyncio.create_task(cache.get("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the miss waited its loop turn: its query is in flight now
    cache.put(competition("a", "after"))  # written while the old row was being read
    postgres.gate.set()
    assert (await loading) == competition("a", "before")
    assert cache.cached("a") == competition("a", "after")  # the older read did not land
    postgres.rows["a"] = competition("a", "after")
    cache.invalidate("a")
    assert cache.cached("a") is None
    assert await cache.get("a") == competition("a", "after")
    assert postgres.queries == [["a"], ["a"]]


async def test_zero_ttl_always_queries_but_concurrent_lookups_still_share() -> None:
    postgres, clock = FakePostgres(competition("a")), Clock()
    cache = CompetitionCache(postgres.fetch, ttl_s=0.0, clock=clock)
    await cache.get("a")
    await cache.get("a")
    assert len(postgres.queries) == 2
    postgres.gate = asyncio.Event()
    lookups = [asyncio.create_task(cache.get("a")) for _ in range(5)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first lookup's query is in flight, the others joined it
    postgres.gate.set()
    assert await asyncio.gather(*lookups) == [competition("a")] * 5
    assert len(postgres.queries) == 3
