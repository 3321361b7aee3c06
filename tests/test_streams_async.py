"""Streams (async): a decorated async-generator function stays one; retried until its first
item, later errors unchanged, timeout on the first item only, a deadline throughout, the
concurrency slot held until the stream ends or is closed; cached items replayed by a new
async generator; no single-flight."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opero import DeadlineExceededError, opero


def flaky(failures: int, n: int = 3) -> tuple[list[int], Any]:
    runs: list[int] = []

    async def gen(x: int) -> AsyncIterator[int]:
        runs.append(x)
        if len(runs) <= failures:
            raise ConnectionError(f"down {len(runs)}")
        for i in range(n):
            await asyncio.sleep(0)
            yield x + i

    return runs, gen


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in stream]


async def test_an_async_generator_function_stays_one() -> None:
    _runs, gen = flaky(0)
    f = opero(gen)
    assert inspect.isasyncgenfunction(f)
    assert not inspect.iscoroutinefunction(f)
    assert inspect.isasyncgenfunction(f.with_options(cache=False))
    assert inspect.isasyncgenfunction(opero(cache=False)(gen))
    assert f.__name__ == "gen"
    assert await collect(f(1)) == [1, 2, 3]


async def test_an_error_before_the_first_item_is_retried() -> None:
    _runs, gen = flaky(2)
    f = opero(cache=False, retries=3, min_delay=0)(gen)
    assert await collect(f(1)) == [1, 2, 3]
    s = f.stats()
    assert (s.calls, s.attempts, s.failures, s.retries) == (1, 3, 2, 2)


async def test_an_error_after_the_first_item_reaches_the_caller_unchanged() -> None:
    error = KeyError("midway")

    @opero(retries=3, min_delay=0)
    async def gen() -> AsyncIterator[int]:
        yield 1
        raise error

    seen: list[int] = []
    with pytest.raises(KeyError) as info:
        async for item in gen():
            seen.append(item)
    assert info.value is error and seen == [1]
    assert gen.stats().attempts == 1
    assert not gen.cache_contains()


async def test_timeout_bounds_the_first_item_only() -> None:
    calls: list[int] = []

    @opero(cache=False, timeout=0.3, retries=1, min_delay=0)
    async def slow() -> AsyncIterator[int]:
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(5)  # cancelled at 0.3 s
        yield 0
        for i in range(1, 4):
            await asyncio.sleep(0.2)
            yield i

    assert await collect(slow()) == [0, 1, 2, 3]
    assert len(calls) == 2
    assert slow.stats().errors.get("TimeoutError") == 1


async def test_a_deadline_bounds_the_whole_stream() -> None:
    @opero(cache=False, deadline=0.5, retries=0)
    async def slow() -> AsyncIterator[int]:
        for i in range(50):
            yield i
            await asyncio.sleep(0.2)

    seen: list[int] = []
    with pytest.raises(DeadlineExceededError):
        async for item in slow():
            seen.append(item)
    assert 1 <= len(seen) <= 4
    assert slow.stats().deadlines == 1


@pytest.mark.parametrize("how", ["aclose", "end", "drop"])
async def test_the_concurrency_slot_is_held_until_the_stream_ends_or_is_closed(how: str) -> None:
    _runs, gen = flaky(0)
    f = opero(cache=False, concurrency=1)(gen)
    first = f(1)
    assert await anext(first) == 1
    other = asyncio.ensure_future(anext(f(2)))
    await asyncio.sleep(0.3)
    assert not other.done()
    if how == "aclose":
        await first.aclose()
    elif how == "end":
        assert await collect(first) == [2, 3]
    else:
        del first
        gc.collect()  # the loop's finalizer closes it
    assert await asyncio.wait_for(other, 10) == 2


async def test_a_cancelled_attempt_gives_its_slot_back() -> None:
    started = asyncio.Event()

    @opero(cache=False, concurrency=1)
    async def hang(x: int) -> AsyncIterator[int]:
        started.set()
        if x:
            await asyncio.sleep(60)
        yield x

    task = asyncio.ensure_future(collect(hang(1)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.wait_for(collect(hang(0)), 10) == [0]


async def test_a_finished_stream_is_replayed_by_a_new_async_generator() -> None:
    runs, gen = flaky(0)
    f = opero(gen)
    assert await collect(f(1)) == [1, 2, 3]
    replay = f(1)
    assert inspect.isasyncgen(replay)
    assert await collect(replay) == [1, 2, 3]
    assert await collect(f(1)) == [1, 2, 3]
    assert runs == [1]
    s = f.stats()
    assert (s.calls, s.cache_hits, s.attempts) == (3, 2, 1)


async def test_abandoned_failing_and_long_streams_are_not_stored() -> None:
    _runs, gen = flaky(0, n=4)
    f = opero(gen)
    stream = f(1)
    await anext(stream)
    await stream.aclose()
    assert not f.cache_contains(1)
    g = opero(cache_stream_max=3)(gen)
    assert await collect(g(1)) == [1, 2, 3, 4]
    assert not g.cache_contains(1)
    h = opero(cache_stream_max=4)(gen)
    assert await collect(h(1)) == [1, 2, 3, 4] and h.cache_contains(1)


async def test_a_stream_without_items_is_stored_as_no_items() -> None:
    runs, gen = flaky(0, n=0)
    f = opero(gen)
    assert await collect(f(1)) == []
    assert await collect(f(1)) == [] and runs == [1]


async def test_concurrent_misses_each_stream_on_their_own() -> None:
    arrived = 0
    both = asyncio.Event()

    @opero
    async def gen(x: int) -> AsyncIterator[int]:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 10)  # single-flight would deadlock here
        yield x

    assert await asyncio.gather(collect(gen(1)), collect(gen(1))) == [[1], [1]]
    assert gen.stats().attempts == 2


async def test_with_options_and_cache_control() -> None:
    runs, gen = flaky(0)
    f = opero(gen)
    await collect(f(1))
    assert await collect(f.with_options(cache=False)(1)) == [1, 2, 3] and runs == [1, 1]
    assert await collect(f.with_options(cache="refresh")(1)) == [1, 2, 3] and len(runs) == 3
    assert await collect(f(1)) == [1, 2, 3] and len(runs) == 3
    assert f.cache_delete(1) and not f.cache_contains(1)
