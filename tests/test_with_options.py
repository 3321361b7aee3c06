"""``f.with_options(...)``: per-call changes that share the function's state."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any

import pytest

import opero
from opero import DeadlineExceededError, RejectedResultError, RetryBudget


def counting() -> tuple[list[int], Any]:
    calls: list[int] = []

    def fn(x: int) -> int:
        calls.append(x)
        return len(calls)

    return calls, fn


def test_cache_false_neither_reads_nor_writes_and_refresh_recomputes_and_stores() -> None:
    calls, fn = counting()
    f = opero.opero()(fn)
    assert f(1) == 1 and f(1) == 1
    assert f.with_options(cache=False)(1) == 2  # not read
    assert f(1) == 1  # not written either
    assert f.with_options(cache=False)(2) == 3 and not f.cache_contains(2)
    assert f.with_options(cache="refresh")(1) == 4  # not read, stored
    assert f(1) == 4 and calls == [1, 1, 2, 1]
    assert f.stats().calls == 7 and f.stats().cache_hits == 3  # one set of stats


async def test_async_variants_stay_coroutine_functions() -> None:
    calls: list[int] = []

    @opero.opero()
    async def f(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0)
        return len(calls)

    refresh = f.with_options(cache="refresh")
    assert inspect.iscoroutinefunction(refresh)
    assert await f(1) == 1 and await refresh(1) == 2 and await f(1) == 2
    assert await f.with_options(cache=False)(1) == 3 and await f(1) == 2


def test_the_same_overrides_give_the_same_object_and_bad_ones_are_refused() -> None:
    f = opero.opero()(counting()[1])
    assert f.with_options(retries=0, timeout=1) is f.with_options(timeout=1, retries=0)
    assert f.with_options(retries=1) is not f.with_options(retries=0)
    with pytest.raises(TypeError, match="rate_limit"):
        f.with_options(rate_limit=3)
    with pytest.raises(ValueError, match="retries"):
        f.with_options(retries=-1)
    with pytest.raises(ValueError, match="cache"):
        f.with_options(cache="sometimes")
    g = opero.opero(cache=False)(counting()[1])
    with pytest.raises(ValueError, match="cache=False"):
        g.with_options(cache="refresh")
    assert g.with_options(retries=0)(1) == 1


def test_retries_and_result_checks_change_for_the_variant_only(clock: Any) -> None:
    attempts: list[int] = []

    @opero.opero(retries=3, min_delay=0, cache=False)
    def f(x: int) -> int:
        attempts.append(x)
        raise ValueError(x)

    with pytest.raises(ValueError):
        f.with_options(retries=0)(1)
    assert attempts == [1]
    with pytest.raises(ValueError):
        f(2)
    assert attempts == [1, 2, 2, 2, 2]
    picky = opero.opero(retries=2, min_delay=0)(lambda x: x).with_options(
        retry_on_result=lambda r: r < 10
    )
    with pytest.raises(RejectedResultError):
        picky(1)


def test_variants_share_the_rate_limit_and_the_retry_budget(clock: Any) -> None:
    starts: list[float] = []

    @opero.opero(rate_limit=1, cache=False, retries=0)
    def f(x: int) -> int:
        starts.append(clock.now)
        return x

    quick = f.with_options(timeout=5)
    f(1), quick(2), f(3)
    assert starts == [1000, 1001, 1002]  # one schedule for both

    @opero.opero(retries=3, min_delay=0, cache=False, retry_budget=RetryBudget(0, 1, 2))
    def down(x: int) -> int:
        raise ValueError(x)

    other = down.with_options(retries=5)
    for call in (down, other, down):
        with pytest.raises(ValueError):
            call(1)
    assert down.stats().retries == 2  # a reserve of 1 x 2 retries, spent by both
    assert down.stats().budget_refusals == 3


def test_a_variant_deadline_bounds_its_calls() -> None:
    @opero.opero(cache=False, retries=0)
    def slow(x: int) -> int:
        time.sleep(1)
        return x

    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        slow.with_options(deadline=0.2)(1)
    assert time.monotonic() - started < 0.9
