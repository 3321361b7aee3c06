"""timeout=: an attempt that runs too long is abandoned and counts as a failure.

Integration tests with real (short) time limits and wide margins: a hung attempt must not
hold the caller.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from opero import opero


def test_sync_timeout_abandons_attempt_and_retries() -> None:
    calls = 0
    stop = threading.Event()

    @opero(cache=False, timeout=0.05, retries=2, min_delay=0)
    def hang() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            stop.wait(5)  # hangs far beyond the timeout
        return "ok"

    t0 = time.monotonic()
    assert hang() == "ok"
    assert time.monotonic() - t0 < 2.0
    assert calls == 3
    stop.set()


def test_sync_timeout_error_when_all_time_out() -> None:
    stop = threading.Event()

    @opero(cache=False, timeout=0.02, retries=1, min_delay=0)
    def hang() -> None:
        stop.wait(5)

    with pytest.raises(TimeoutError, match="timeout=0.02"):
        hang()
    stop.set()


def test_sync_timeout_passes_result_and_exception() -> None:
    @opero(cache=False, timeout=5, retries=0)
    def f(x: int) -> int:
        if x < 0:
            raise KeyError(x)
        return x

    assert f(3) == 3
    with pytest.raises(KeyError):
        f(-1)


async def test_async_timeout_cancels_attempt() -> None:
    cancelled = 0
    calls = 0

    @opero(cache=False, timeout=0.05, retries=1, min_delay=0)
    async def hang() -> str:
        nonlocal calls, cancelled
        calls += 1
        if calls == 1:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled += 1
                raise
        return "ok"

    assert await hang() == "ok"
    assert (calls, cancelled) == (2, 1)


async def test_async_timeout_error_is_timeout_error() -> None:
    @opero(cache=False, timeout=0.02, retries=0)
    async def hang() -> None:
        await asyncio.sleep(10)

    with pytest.raises(TimeoutError, match="abandoned"):
        await hang()


async def test_own_timeout_error_is_not_rewritten() -> None:
    @opero(cache=False, timeout=5, retries=0)
    async def f() -> None:
        raise TimeoutError("mine")

    with pytest.raises(TimeoutError, match="^mine$"):
        await f()
