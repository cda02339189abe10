"""``TTLCache.expiring_within`` (refresh-ahead) against a plain model of the cache, over
random puts, discards, evictions and clock moves (backwards too): the bisected expiry list
must answer what a walk over every entry would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ttl_cache import TTLCache

TTL_S = 10.0
MAX_ENTRIES = 6
KEYS = st.sampled_from("abcdefghij")
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), KEYS),
        st.tuples(st.just("discard"), KEYS),
        st.tuples(st.just("tick"), st.floats(min_value=-2.0, max_value=6.0)),
        st.tuples(st.just("ask"), st.tuples(st.floats(0.0, 12.0), st.integers(1, 8))),
    ),
    max_size=80,
)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _expected(
    model: dict[str, tuple[float, int]], now: float, seconds: float, limit: int
) -> list[str]:
    """Fresh keys expiring within ``seconds``, soonest first (then put order)."""
    due = sorted(
        (expires_at, order, key)
        for key, (expires_at, order) in model.items()
        if now < expires_at < now + seconds
    )
    return [key for _, _, key in due[:limit]]


def _check(
    got: list[str],
    model: dict[str, tuple[float, int]],
    now: float,
    seconds: float,
    limit: int,
) -> None:
    """``got`` is the soonest ``limit`` keys due within ``seconds``: same expiries as the
    model's answer, soonest first, each key once and really due (keys expiring at the same
    instant may come in either order)."""
    expected = _expected(model, now, seconds, limit)
    assert len(set(got)) == len(got)
    assert all(key in model and now < model[key][0] < now + seconds for key in got), got
    expiries = [model[key][0] for key in got]
    assert expiries == sorted(expiries)
    assert expiries == [model[key][0] for key in expected]


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_expiring_within_answers_as_a_walk_over_every_entry(
    operations: list[tuple[str, object]],
) -> None:
    clock = _Clock()
    cache: TTLCache[str, int] = TTLCache(ttl_s=TTL_S, max_entries=MAX_ENTRIES, clock=clock)
    model: dict[str, tuple[float, int]] = {}  # key -> (expiry, put order)
    for order, (name, argument) in enumerate(operations):
        if name == "put":
            key = str(argument)
            cache.put(key, order)
            model.pop(key, None)
            model[key] = (clock.now + TTL_S, order)
            while len(model) > MAX_ENTRIES:  # least recently stored goes first
                del model[min(model, key=lambda k: model[k][1])]
        elif name == "discard":
            cache.discard(str(argument))
            model.pop(str(argument), None)
        elif name == "tick":
            assert isinstance(argument, float)
            clock.now += argument
        else:
            assert isinstance(argument, tuple)
            seconds, limit = argument
            _check(cache.expiring_within(seconds, limit), model, clock.now, seconds, limit)
    assert sorted(cache.expiring_within(TTL_S + 1, 100)) == sorted(
        _expected(model, clock.now, TTL_S + 1, 100)
    )
