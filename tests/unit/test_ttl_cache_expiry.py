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
        st.tuples(
            st.just("ask"),
            st.tuples(
                st.floats(0.0, 12.0),
                st.integers(1, 8),
                st.sampled_from([0.0, 0.0, 1.0, 5.0, 30.0]),
            ),
        ),
    ),
    max_size=80,
)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _expected(
    model: dict[str, tuple[float, int]],
    now: float,
    seconds: float,
    limit: int,
    expired_within_s: float = 0.0,
) -> list[str]:
    """Keys expiring within ``seconds`` or expired within ``expired_within_s``, soonest
    first (then put order)."""
    due = sorted(
        (expires_at, order, key)
        for key, (expires_at, order) in model.items()
        if now - expired_within_s < expires_at < now + seconds
    )
    return [key for _, _, key in due[:limit]]


def _check(
    got: list[str],
    model: dict[str, tuple[float, int]],
    now: float,
    ask: tuple[float, int, float],
) -> None:
    """``got`` is the soonest ``limit`` keys due: same expiries as the model's answer,
    soonest first, each key once and really due (keys expiring at the same instant may come
    in either order)."""
    seconds, limit, back_s = ask
    expected = _expected(model, now, seconds, limit, back_s)
    assert len(set(got)) == len(got)
    assert all(key in model and now - back_s < model[key][0] < now + seconds for key in got)
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
            seconds, limit, back_s = argument
            got = cache.expiring_within(seconds, limit, expired_within_s=back_s)
            _check(got, model, clock.now, (seconds, limit, back_s))
    assert sorted(cache.expiring_within(TTL_S + 1, 100)) == sorted(
        _expected(model, clock.now, TTL_S + 1, 100)
    )
