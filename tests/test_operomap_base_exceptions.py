"""A BaseException raised by the function never hangs a map: the map stops, cleans up,
and the exception propagates to the caller, in every mode."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from opero import operomap
from tests.map_helpers import raise_base_exception


def _raising_sync(kind: str):  # type: ignore[no-untyped-def]
    def fn(x: int) -> int:
        if x == 3:
            raise {"exit": SystemExit, "kbd": KeyboardInterrupt, "cancel": asyncio.CancelledError}[
                kind
            ]("stop")
        return x

    return fn


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["exit", "kbd", "cancel"])
@pytest.mark.parametrize("mode", ["thread", "async"])
def test_thread_and_async_modes_with_a_sync_function(kind: str, mode: str) -> None:
    expected = {"exit": SystemExit, "kbd": KeyboardInterrupt, "cancel": asyncio.CancelledError}
    mapped = operomap(mode=mode, workers=2, progress=False, cache=False)(_raising_sync(kind))
    before = threading.active_count()
    with pytest.raises(expected[kind]):
        mapped(range(10))
    with pytest.raises(expected[kind]):
        list(mapped.iter(range(10)))
    deadline = time.monotonic() + 5  # the abandoned threads finish their attempt and exit
    while threading.active_count() > before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before + 1


@pytest.mark.timeout(60)
def test_async_function_raising_system_exit() -> None:
    async def fn(x: int) -> int:
        if x == 2:
            raise SystemExit("bye")
        await asyncio.sleep(0)
        return x

    mapped = operomap(mode="async", workers=4, progress=False, cache=False)(fn)
    with pytest.raises(SystemExit):
        asyncio.run(mapped(range(6)))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["exit", "kbd"])
def test_process_mode_re_raises_in_the_caller(kind: str) -> None:
    expected = {"exit": SystemExit, "kbd": KeyboardInterrupt}[kind]
    mapped = operomap(mode="process", workers=2, progress=False, cache=False)(raise_base_exception)
    with pytest.raises(expected):
        mapped([(i, kind) for i in range(6)])


@pytest.mark.timeout(60)
def test_with_retries_and_cache_the_exception_is_not_retried() -> None:
    calls: list[int] = []

    def fn(x: int) -> int:
        calls.append(x)
        raise KeyboardInterrupt

    mapped = operomap(mode="thread", workers=1, progress=False, retries=3)(fn)
    with pytest.raises(KeyboardInterrupt):
        mapped([1])
    assert calls == [1]
