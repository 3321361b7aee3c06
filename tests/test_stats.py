"""``stats()`` and ``cache_info()`` after scripted sequences (calls and maps)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from opero import Limit, opero, operomap
from opero.core.stats import MAX_KEYS, OTHER
from tests import map_helpers as h


def test_uncached_calls_attempts_failures_retries(clock) -> None:
    failed: set[int] = set()

    @opero(cache=False, retries=2, min_delay=1, jitter=False)
    def f(x: int) -> int:
        if x == 3 and x not in failed:
            failed.add(x)
            raise ConnectionError("once")
        return x

    for x in (1, 2, 3, 4):
        f(x)
    s = f.stats()
    assert dataclasses.is_dataclass(s)
    assert (s.calls, s.cache_hits, s.attempts, s.failures, s.retries) == (4, 0, 5, 1, 1)
    assert dict(s.successes) == {None: 4}
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.calls = 0  # type: ignore[misc]
    assert f.cache_info() == (0, 4, 0, 0)


def test_cache_hits_and_cache_info_like_lru_cache() -> None:
    @opero(cache_maxsize=10)
    def f(x: int) -> int:
        return x * 2

    f(1)
    f(1)
    f(2)
    info = f.cache_info()
    assert info == (1, 2, 10, 2)
    assert (info.hits, info.misses, info.maxsize, info.currsize) == (1, 2, 10, 2)
    f.cache_clear()
    assert f.cache_info() == (0, 0, 10, 0)
    f(1)
    assert f.cache_info() == (0, 1, 10, 1)
    s = f.stats()  # not reset by cache_clear()
    assert (s.calls, s.cache_hits, s.attempts) == (4, 1, 3)
    assert dict(s.successes) == {None: 3}


def test_disk_cache_info_has_no_sizes(tmp_path) -> None:
    @opero(cache_backend="disk", cache_dir=str(tmp_path))
    def f(x: int) -> int:
        return x + 1

    f(1)
    f(1)
    assert f.cache_info() == (1, 1, None, None)


def test_successes_by_fallback_value(clock) -> None:
    @opero(cache=False, retries=0, arg_fallback="model")
    def ask(q: str, model: list[str] = ["big", "small"]) -> str:
        if model == "big" and q != "easy":
            raise ConnectionError("big is down")
        return f"{q}@{model}"

    ask("easy")
    ask("hard")
    ask("hard")
    s = ask.stats()
    assert dict(s.successes) == {"'big'": 1, "'small'": 2}
    assert (s.calls, s.attempts, s.failures, s.retries) == (3, 5, 2, 0)


def test_successes_keep_at_most_a_thousand_keys(clock) -> None:
    @opero(cache=False, retries=0, arg_fallback="value")
    def f(value: list[int]) -> int:
        return value  # type: ignore[return-value]

    for n in range(MAX_KEYS + 5):
        f([n])  # type: ignore[list-item]
    s = f.stats()
    assert len(s.successes) == MAX_KEYS + 1
    assert s.successes[OTHER] == 5


def test_wait_counts_rate_limit_waits(clock) -> None:
    @opero(cache=False, rate_limit=Limit(2))
    def f() -> None:
        return None

    for _ in range(3):
        f()
    assert f.stats().wait == pytest.approx(1.0)


async def test_async_calls(clock) -> None:
    failed: list[int] = []

    @opero(retries=1, min_delay=0)
    async def f(x: int) -> int:
        if not failed:
            failed.append(x)
            raise ConnectionError("once")
        return x

    await f(1)
    await f(1)
    await f(2)
    s = f.stats()
    assert (s.calls, s.cache_hits, s.attempts, s.failures, s.retries) == (3, 1, 3, 1, 1)
    assert f.cache_info() == (1, 2, 10_000, 2)


@pytest.mark.parametrize("mode", ["thread", "process", "async"])
def test_maps_count_each_item_as_a_call(mode: str) -> None:
    mapped = operomap(mode=mode, workers=2, progress=False, retries=1, min_delay=0)(h.fail_on_three)
    with pytest.raises(Exception):
        mapped(range(6))
    s = mapped.stats()
    # item 3 fails on both attempts; the others succeed at once
    assert (s.calls, s.cache_hits, s.attempts, s.failures, s.retries) == (6, 0, 7, 2, 1)
    assert dict(s.successes) == {None: 5}
    mapped(range(3))
    s = mapped.stats()
    assert (s.calls, s.cache_hits) == (9, 3)
    assert mapped.cache_info().hits == 3


def test_map_over_a_big_input_in_bulk() -> None:
    mapped = operomap(mode="process", workers=2, progress=False)(h.square)
    mapped(range(2000))
    mapped(range(1000, 3000))
    s = mapped.stats()
    assert (s.calls, s.cache_hits, s.attempts, s.failures) == (4000, 1000, 3000, 0)
    assert dict(s.successes) == {None: 3000}


async def test_async_map_of_an_async_function() -> None:
    async def g(x: int) -> int:
        await asyncio.sleep(0)
        return x

    mapped = operomap(mode="async", workers=4, progress=False, cache=False)(g)
    await mapped(range(50))
    s = mapped.stats()
    assert (s.calls, s.attempts, s.failures) == (50, 50, 0)
    assert dict(s.successes) == {None: 50}
