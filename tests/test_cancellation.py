"""Cancelling the caller at every stage leaves no leaked slot, lock, flight or task."""

from __future__ import annotations

import asyncio

import pytest

from opero import opero
from opero.core.clock import CLOCK


def _flights(f: object) -> int:
    return len(f.__opero_cache__.flights)  # type: ignore[attr-defined]


async def _other_tasks() -> set[asyncio.Task[object]]:
    await asyncio.sleep(0)
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_cancel_during_the_call() -> None:
    started = asyncio.Event()

    @opero(rate_limit=1000)
    async def f(x: int) -> int:
        started.set()
        await asyncio.Event().wait()
        return x

    task = asyncio.create_task(f(1))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _flights(f) == 0
    assert await _other_tasks() == set()


async def test_cancel_during_backoff_sleep(monkeypatch) -> None:
    sleeping = asyncio.Event()

    async def forever(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(CLOCK, "async_sleep", forever)
    attempts = 0

    @opero(retries=3)
    async def f() -> int:
        nonlocal attempts
        attempts += 1
        raise ConnectionError

    task = asyncio.create_task(f())
    await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == 1
    assert _flights(f) == 0
    assert await _other_tasks() == set()


async def test_cancel_during_rate_limit_wait(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(CLOCK, "monotonic", lambda: now[0])
    waiting = asyncio.Event()

    async def wait(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(CLOCK, "async_sleep", wait)

    @opero(rate_limit=1)
    async def f(x: int) -> int:
        return x

    assert await f(1) == 1  # the slot at 100.0
    task = asyncio.create_task(f(2))  # books 101.0 and waits
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    limiter = f.__opero_judge__.limiter  # type: ignore[attr-defined]
    assert limiter.reserve(100.0) == 101.0  # the cancelled slot came back
    assert _flights(f) == 0
    assert await _other_tasks() == set()


async def test_cancel_a_waiter_while_another_task_computes() -> None:
    release = asyncio.Event()
    computed = 0

    @opero()
    async def f(x: int) -> int:
        nonlocal computed
        computed += 1
        await release.wait()
        return x * 2

    leader = asyncio.create_task(f(5))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(f(5))
    for _ in range(5):
        await asyncio.sleep(0)
    flights = f.__opero_cache__.flights  # type: ignore[attr-defined]
    assert flights.waiting() == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert flights.waiting() == 0
    (flight,) = flights._flights.values()
    assert list(flight.loops) == []  # the cancelled waiter's future was removed
    release.set()
    assert await leader == 10
    assert await f(5) == 10  # stored by the leader
    assert computed == 1
    assert _flights(f) == 0
    assert await _other_tasks() == set()


async def test_cancel_the_leader_hands_over_to_a_waiter() -> None:
    release = asyncio.Event()
    computed = 0

    @opero()
    async def f(x: int) -> int:
        nonlocal computed
        computed += 1
        await release.wait()
        return x + computed

    leader = asyncio.create_task(f(1))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(f(1))
    for _ in range(5):
        await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    assert await waiter == 3  # the waiter computed it (second computation)
    assert computed == 2
    assert _flights(f) == 0


def test_keyboard_interrupt_in_sync_rate_limit_wait_releases_the_slot(monkeypatch) -> None:
    now = [50.0]
    monkeypatch.setattr(CLOCK, "monotonic", lambda: now[0])

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(CLOCK, "sleep", interrupted)

    @opero(rate_limit=2)
    def f(x: int) -> int:
        return x

    assert f(1) == 1
    with pytest.raises(KeyboardInterrupt):
        f(2)
    limiter = f.__opero_judge__.limiter  # type: ignore[attr-defined]
    assert limiter.reserve(50.0) == 50.5
    assert _flights(f) == 0
