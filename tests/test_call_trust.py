"""Calls and keys: keys that never collide or raise, recursion through the cache, contextvars
under timeout=, wrong arguments not retried, bounded instance bookkeeping."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import sys
import threading

import pytest

from opero import opero
from opero.cache.keys import Frozen
from opero.testing import set_testing


def test_unhashable_containers_never_share_an_entry_with_other_arguments() -> None:
    calls: list[object] = []

    @opero
    def echo(x: object) -> str:
        calls.append(x)
        return f"{type(x).__name__}:{x!r}"

    assert echo([1, 2]) == "list:[1, 2]"
    assert echo((1, 2)) == "tuple:(1, 2)"  # a hashable tuple of the same items: its own entry
    assert echo({1, 2}) == "set:{1, 2}"
    assert echo(frozenset({1, 2})) == "frozenset:frozenset({1, 2})"
    assert echo({"a": 1}) == "dict:{'a': 1}"
    assert echo(frozenset({("a", 1)})) == "frozenset:frozenset({('a', 1)})"
    assert echo([1, 2]) == "list:[1, 2]"  # equal list: a hit
    assert len(calls) == 6


def test_dict_order_does_not_matter_and_nested_containers_work() -> None:
    calls = []

    @opero
    def size(d: dict[str, object]) -> int:
        calls.append(d)
        return len(d)

    assert size({"a": [1], "b": {"c": [2]}}) == 2
    assert size({"b": {"c": [2]}, "a": [1]}) == 2
    assert len(calls) == 1
    assert size({"a": [1], "b": {"c": [3]}}) == 2
    assert len(calls) == 2


def test_a_stable_key_lookalike_argument_is_not_a_hit() -> None:
    """The first build keyed unhashable calls as ("s", digest): a call with those two strings
    as arguments got the other call's value."""

    @opero
    def f(*parts: object) -> object:
        return parts

    first = f([1])
    from opero.cache.encoding import digest

    assert f("s", digest(([[1]], {}))) == ("s", digest(([[1]], {})))
    assert first == ([1],)


def test_frozen_keys_compare_by_type_and_items() -> None:
    assert Frozen(list, (1, 2)) == Frozen(list, (1, 2))
    assert Frozen(list, (1, 2)) != Frozen(tuple, (1, 2))
    assert Frozen(list, (1, 2)) != (1, 2)


class BadHash:
    def __hash__(self) -> int:
        raise RuntimeError("no hash for you")


def test_key_building_never_raises() -> None:
    calls = []

    @opero
    def f(x: object) -> str:
        calls.append(1)
        return "ok"

    big = 10**5000
    recursive: list[object] = []
    recursive.append(recursive)
    for arg in (BadHash(), recursive, [BadHash()]):
        assert f(arg) == "ok"
        assert f(arg) == "ok"  # uncached: runs again
    assert f(big) == "ok"  # hashable: memory works as usual
    assert f(big) == "ok"
    assert len(calls) == 7


HUGE_CALLS: list[int] = []  # module-level: a closure's values are part of disk keys


def test_huge_int_on_disk(tmp_path) -> None:
    HUGE_CALLS.clear()

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def f(x: int) -> int:
        HUGE_CALLS.append(1)
        return x % 7

    big = 10**5000
    assert sys.get_int_max_str_digits() < 5000
    assert f(big) == big % 7
    assert f(big) == big % 7
    assert len(HUGE_CALLS) == 1


def test_recursion_with_the_same_arguments_does_not_deadlock() -> None:
    result: list[int] = []

    @opero
    def fib_like(n: int) -> int:
        if len(result) < 1:
            result.append(1)
            return fib_like(n) + 1  # the very same call, inside its own computation
        return n

    done = threading.Event()
    out: list[int] = []

    def run() -> None:
        out.append(fib_like(5))
        done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(5), "a self-call with the same arguments deadlocked"
    assert out == [6]
    assert fib_like(5) == 6  # the outer value was cached


def test_async_recursion_with_the_same_arguments_does_not_deadlock() -> None:
    seen = []

    @opero
    async def twice(n: int) -> int:
        seen.append(n)
        if len(seen) == 1:
            return await twice(n) * 10
        return n

    assert asyncio.run(asyncio.wait_for(twice(3), 5)) == 30


VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def test_timeout_attempt_sees_the_callers_contextvars() -> None:
    @opero(timeout=5, cache=False)
    def read() -> str:
        return VAR.get()

    token = VAR.set("request-42")
    try:
        assert read() == "request-42"
    finally:
        VAR.reset(token)


def test_wrong_arguments_raise_at_once_without_retry() -> None:
    sleeps: list[float] = []
    from opero.core.clock import CLOCK

    calls = []

    @opero(retries=3, cache=False)
    def needs_two(a: int, b: int) -> int:
        calls.append(1)
        return a + b

    real = CLOCK.sleep
    CLOCK.sleep = sleeps.append  # type: ignore[assignment]
    try:
        with pytest.raises(TypeError, match="missing 1 required positional argument"):
            needs_two(1)  # type: ignore[call-arg]
    finally:
        CLOCK.sleep = real  # type: ignore[method-assign]
    assert sleeps == []


def test_a_type_error_from_inside_is_still_retried() -> None:
    calls = []

    @opero(retries=2, cache=False)
    def flaky(x: int) -> int:
        calls.append(x)
        if len(calls) < 3:
            raise TypeError("a bug in a library below")
        return x

    with set_testing():
        assert flaky(1) == 1
    assert len(calls) == 3


def test_async_wrong_arguments_raise_at_once() -> None:
    calls = []

    @opero(retries=3, cache=False, rate_limit=1000)
    async def needs_two(a: int, b: int) -> int:
        calls.append(1)
        return a + b

    with set_testing(), pytest.raises(TypeError):
        asyncio.run(needs_two(1))  # type: ignore[call-arg]


class Service:
    def __init__(self) -> None:
        self.calls = 0

    @opero(cache_maxsize=50)
    def lookup(self, n: int) -> int:
        self.calls += 1
        return n * 2


def test_instance_bookkeeping_is_bounded_by_maxsize() -> None:
    svc = Service()
    for n in range(5_000):
        assert svc.lookup(n) == n * 2
    layer = Service.lookup.__opero_cache__  # type: ignore[attr-defined]
    assert len(layer.store.data) <= 50
    tracked = sum(len(keys) for keys in layer.keys._owner_keys.values())
    assert tracked <= 2 * 50 + 16
    many = [Service() for _ in range(500)]
    for s in many:
        s.lookup(1)
    assert len(layer.keys._owners) <= 2 * 50 + 16
    del many, s
    gc.collect()
    assert len(layer.keys._owners) <= 1  # the dead instances' bookkeeping is gone
