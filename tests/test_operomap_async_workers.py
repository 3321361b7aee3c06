"""Async mode runs items on at most ``workers`` coroutines, started lazily, no task per item."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from opero import OperomapError, operomap


def test_at_most_workers_in_flight_and_few_tasks() -> None:
    running = 0
    peak = 0
    tasks_seen: list[int] = []

    async def fn(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        tasks_seen.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0.001)
        running -= 1
        return x * 2

    mapped = operomap(mode="async", workers=5, progress=False, cache=False)(fn)

    created = 0

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kw: Any) -> asyncio.Task[Any]:
        nonlocal created
        created += 1
        return asyncio.Task(coro, loop=loop, **kw)

    async def main() -> list[int]:
        asyncio.get_running_loop().set_task_factory(factory)
        return await mapped(range(200))

    assert asyncio.run(main()) == [x * 2 for x in range(200)]
    assert peak == 5
    assert created < 20  # worker coroutines, not a task per item (200)
    assert max(tasks_seen) <= 1 + 5  # the caller's task and the five worker coroutines


def test_workers_start_lazily() -> None:
    tasks_seen: list[int] = []

    async def fn(x: int) -> int:
        tasks_seen.append(len(asyncio.all_tasks()))
        await asyncio.sleep(0.001)
        return x

    mapped = operomap(mode="async", workers=1000, progress=False, cache=False)(fn)

    async def main() -> list[int]:
        return await mapped([1, 2, 3])

    assert asyncio.run(main()) == [1, 2, 3]
    assert max(tasks_seen) <= 1 + 3


def test_unordered_yields_in_completion_order() -> None:
    async def fn(x: float) -> float:
        await asyncio.sleep(x)
        return x

    mapped = operomap(mode="async", workers=3, progress=False, cache=False, ordered=False)(fn)

    async def main() -> list[float]:
        return [v async for v in mapped.iter([0.3, 0.2, 0.01])]

    assert asyncio.run(main()) == [0.01, 0.2, 0.3]


def test_first_attempt_failure_continues_in_the_retry_walk() -> None:
    calls: dict[int, int] = {}

    async def flaky(x: int) -> int:
        calls[x] = calls.get(x, 0) + 1
        await asyncio.sleep(0)
        if calls[x] == 1 and x % 2:
            raise ConnectionError(f"first try of {x}")
        return x

    mapped = operomap(mode="async", workers=4, progress=False, cache=False, retries=1, min_delay=0)(
        flaky
    )
    assert asyncio.run(mapped(range(10))) == list(range(10))
    assert calls == {x: 2 if x % 2 else 1 for x in range(10)}


def test_error_not_in_retry_on_fails_only_its_item() -> None:
    calls = 0

    async def fn(x: int) -> int:
        nonlocal calls
        calls += 1
        if x == 2:
            raise ValueError("two")
        return x

    mapped = operomap(
        mode="async", workers=2, progress=False, cache=False, retries=3, retry_on=KeyError
    )(fn)
    with pytest.raises(OperomapError) as info:
        asyncio.run(mapped(range(5)))
    results = info.value.results
    assert results[:2] == [0, 1] and results[3:] == [3, 4]
    assert isinstance(results[2], ValueError)
    assert calls == 5  # not retried


def test_cached_items_and_equal_keys_share_one_computation() -> None:
    calls: list[int] = []

    async def fn(x: int) -> int:
        calls.append(x)
        await asyncio.sleep(0.01)
        return x + 1

    mapped = operomap(mode="async", workers=8, progress=False)(fn)
    assert asyncio.run(mapped([1, 2, 1, 2, 1])) == [2, 3, 2, 3, 2]
    assert sorted(calls) == [1, 2]
    assert asyncio.run(mapped([2, 1, 3])) == [3, 2, 4]
    assert sorted(calls) == [1, 2, 3]
