"""Async functions recognised through wrappers and callable objects; a sync-looking
callable that returns an awaitable fails the call and caches nothing; streams are never
cached."""

from __future__ import annotations

import asyncio
import functools
import inspect
import warnings
from collections.abc import Iterator

import pytest

from opero import opero, operomap


async def _fetch(x: int) -> int:
    await asyncio.sleep(0)
    return x * 2


class AsyncCallable:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, x: int) -> int:
        self.calls += 1
        return x + 1


def test_async_callable_object_gets_the_async_wrapper() -> None:
    obj = AsyncCallable()
    wrapped = opero(obj)
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.run(wrapped(1)) == 2
    assert asyncio.run(wrapped(1)) == 2  # the value was cached, not the coroutine
    assert obj.calls == 1


def test_sync_wrapper_whose_chain_ends_in_async_def_is_async() -> None:
    @functools.wraps(_fetch)
    def plain(x: int):  # type: ignore[no-untyped-def]
        return _fetch(x)

    wrapped = opero(plain)
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.run(wrapped(2)) == 4
    assert asyncio.run(wrapped(2)) == 4  # no "cannot reuse already awaited coroutine"


def test_partial_of_async_function_is_async() -> None:
    wrapped = opero(functools.partial(_fetch))
    assert inspect.iscoroutinefunction(wrapped)
    assert asyncio.run(wrapped(3)) == 6


def test_a_sync_looking_callable_returning_a_coroutine_fails_and_caches_nothing() -> None:
    calls = []

    def looks_sync(x: int):  # type: ignore[no-untyped-def]
        calls.append(x)
        return _fetch(x)  # no __wrapped__: opero cannot tell

    for options in ({}, {"cache": False}, {"rate_limit": 1000}, {"cache": False, "timeout": 5}):
        calls.clear()
        wrapped = opero(**options)(looks_sync)
        for _ in range(2):
            with pytest.raises(TypeError, match="Decorate the `async def` function itself"):
                wrapped(1)
        assert len(calls) == 2, options  # not cached, and not retried either


def test_a_sync_callable_returning_a_future_is_not_cached() -> None:
    loop = asyncio.new_event_loop()
    try:
        calls = []

        @opero(rate_limit=1000)
        def gives_future() -> asyncio.Future[int]:
            calls.append(1)
            return loop.create_future()

        # a Future is a value (only a coroutine means a misdeclared async def), on every
        # path alike; it is never cached: each call runs again
        with pytest.warns(UserWarning, match="never cached"):
            first = gives_future()
        assert isinstance(first, asyncio.Future)
        assert gives_future() is not first
        assert calls == [1, 1]
    finally:
        loop.close()


def test_iterator_results_are_returned_and_never_cached(tmp_path) -> None:
    calls = []

    @opero
    def numbers(n: int) -> Iterator[int]:
        calls.append(n)
        return iter(range(n))

    with pytest.warns(UserWarning, match="never cached"):
        assert list(numbers(3)) == [0, 1, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per decorated function
        assert list(numbers(3)) == [0, 1, 2]  # a fresh stream, not a used-up one
    assert calls == [3, 3]

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def gen(n: int):  # type: ignore[no-untyped-def]
        return (i for i in range(n))

    with pytest.warns(UserWarning):
        assert list(gen(2)) == [0, 1]
    assert list(gen(2)) == [0, 1]


def test_async_iterator_results_are_never_cached() -> None:
    async def agen(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            yield i

    @opero
    async def stream(n: int):  # type: ignore[no-untyped-def]
        return agen(n)

    async def main() -> list[list[int]]:
        out = []
        for _ in range(2):
            out.append([i async for i in await stream(2)])
        return out

    with pytest.warns(UserWarning, match="never cached"):
        assert asyncio.run(main()) == [[0, 1], [0, 1]]


def _twice(x: int) -> Iterator[int]:
    return iter([x, x])


def test_map_results_that_are_streams_are_not_cached() -> None:
    mapped = operomap(mode="thread", workers=2, progress=False)(_twice)
    with pytest.warns(UserWarning):
        first = mapped([1, 2])
    assert [list(r) for r in first] == [[1, 1], [2, 2]]
    second = mapped([1, 2])
    assert [list(r) for r in second] == [[1, 1], [2, 2]]
