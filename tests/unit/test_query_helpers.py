"""Unit tests of the generic helpers the query service put in shared/."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from starlette.datastructures import Headers

from services.query.circuit_breaker import BreakerState, CircuitBreaker, CircuitOpenError
from services.query.signed_cursor import decode_cursor, encode_cursor
from shared.errors import BadRequestError
from shared.http.representation import Representation
from shared.single_flight import SingleFlight
from shared.ttl_cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_breaker_opens_after_threshold_then_half_opens() -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        "dep", failure_threshold=2, reset_timeout_s=5, failure_types=(OSError,), clock=clock
    )

    async def fail() -> None:
        raise OSError("down")

    async def succeed() -> str:
        return "ok"

    for _ in range(2):
        with pytest.raises(OSError, match="down"):
            await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as opened:
        await breaker.call(succeed)
    assert opened.value.retry_after_s == pytest.approx(5)
    clock.now += 5
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(OSError, match="down"):  # the trial fails: open again at once
        await breaker.call(fail)
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    assert await breaker.call(succeed) == "ok"
    assert breaker.state is BreakerState.CLOSED


async def test_breaker_ignores_errors_that_are_not_the_dependency() -> None:
    breaker = CircuitBreaker(
        "dep", failure_threshold=1, reset_timeout_s=5, failure_types=(OSError,)
    )

    async def bug() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await breaker.call(bug)
    assert breaker.state is BreakerState.CLOSED


async def test_single_flight_shares_one_execution_and_its_error() -> None:
    flights: SingleFlight[int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 42

    tasks = [asyncio.create_task(flights.run("k", work)) for _ in range(20)]
    await asyncio.sleep(0)
    assert flights.in_flight("k")
    release.set()
    assert await asyncio.gather(*tasks) == [42] * 20
    assert calls == 1
    assert not flights.in_flight("k")

    async def broken() -> int:
        await asyncio.sleep(0)
        raise ValueError("nope")

    results = await asyncio.gather(
        *(flights.run("e", broken) for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(result, ValueError) for result in results)


async def test_single_flight_run_many_joins_flights_and_loads_the_rest_once() -> None:
    flights: SingleFlight[str] = SingleFlight()
    calls: list[list[str]] = []
    release = asyncio.Event()

    async def load(keys: list[str]) -> dict[str, str]:
        calls.append(keys)
        await release.wait()
        return {key: key.upper() for key in keys}

    async def never() -> str:
        raise AssertionError("a flight for the key is running: this must not be called")

    first = asyncio.create_task(flights.run_many(["a", "b"], load))
    await asyncio.sleep(0)
    second = asyncio.create_task(flights.run_many(["b", "c", "c"], load))
    await asyncio.sleep(0)
    single = asyncio.create_task(flights.run("c", never))  # run() joins run_many's flight
    await asyncio.sleep(0)
    assert calls == [["a", "b"], ["c"]]  # "b" joined the first flight; "c" deduplicated
    release.set()
    assert await first == {"a": "A", "b": "B"}
    assert await second == {"b": "B", "c": "C"}
    assert await single == "C"
    assert not any(flights.in_flight(key) for key in "abc")

    async def forgetful(keys: list[str]) -> dict[str, str]:
        return {}

    with pytest.raises(KeyError, match="did not answer"):
        await flights.run_many(["x"], forgetful)
    assert not flights.in_flight("x")


def test_ttl_cache_expires_keeps_stale_and_bounds_size() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(ttl_s=1, max_entries=2, clock=clock)
    cache.put("a", 1)
    assert cache.get("a") == 1
    clock.now += 1
    assert cache.get("a") is None
    assert cache.get_stale("a") == 1
    cache.put("b", 2)
    cache.put("c", 3)
    assert len(cache) == 2
    assert cache.get_stale("a") is None


def test_signed_cursor_round_trip_rotation_and_tampering() -> None:
    cursor = encode_cursor({"after": "x", "n": 1}, "old-secret")
    assert decode_cursor(cursor, ["new-secret", "old-secret"]) == {"after": "x", "n": 1}
    body, signature = cursor.split(".")
    for tampered in (f"{body[:-1]}A.{signature}", f"{body}.{signature[::-1]}", "", "a.b"):
        with pytest.raises(BadRequestError) as error:
            decode_cursor(tampered, ["old-secret"])
        assert error.value.details == {"field": "cursor"}
    with pytest.raises(BadRequestError):
        decode_cursor(cursor, ["new-secret"])


def test_representation_etag_304_and_gzip() -> None:
    small = Representation.of({"a": 1})
    assert small.gzipped is None
    large = Representation.of({"rows": list(range(1000))})
    assert large.gzipped is not None
    assert gzip.decompress(large.gzipped) == large.body
    zipped = large.respond(Headers({"accept-encoding": "gzip, br"}))
    assert zipped.headers["content-encoding"] == "gzip"
    plain = large.respond(Headers({}))
    assert "content-encoding" not in plain.headers
    assert plain.body == large.body
    for header in (large.etag, large.etag.removeprefix("W/"), f'"x", {large.etag}', "*"):
        assert large.respond(Headers({"if-none-match": header})).status_code == 304
    assert large.respond(Headers({"if-none-match": small.etag})).status_code == 200
