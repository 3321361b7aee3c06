"""``concurrency=N``: at most N attempts at once, across threads, tasks and every map
worker (processes too); waiting callers do not spin; backoff sleeps hold no slot."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from opero import opero, operomap
from opero.limits.running import RunningLimit
from tests import map_helpers as h


class Peak:
    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    events = sorted(
        [(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1])
    )
    best = now = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


def test_threads_share_the_slots() -> None:
    peak = Peak()

    @opero(cache=False, concurrency=2)
    def f(x: int) -> int:
        peak.enter()
        time.sleep(0.02)
        peak.leave()
        return x

    threads = [threading.Thread(target=lambda: [f(i) for i in range(5)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak.peak == 2


def test_tasks_and_loops_in_several_threads_share_the_slots() -> None:
    peak = Peak()

    @opero(cache=False, concurrency=3)
    async def f(x: int) -> int:
        peak.enter()
        await asyncio.sleep(0.01)
        peak.leave()
        return x

    async def many() -> None:
        await asyncio.gather(*(f(i) for i in range(20)))

    threads = [threading.Thread(target=asyncio.run, args=(many(),)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak.peak == 3
    assert f.__opero_judge__.slots.running == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_map_workers_share_the_slots(mode: str) -> None:
    peak = Peak()

    def g(x: int) -> int:
        peak.enter()
        time.sleep(0.02)
        peak.leave()
        return x

    mapped = operomap(mode=mode, workers=8, concurrency=3, cache=False, progress=False)(g)
    assert mapped(range(30)) == list(range(30))
    assert peak.peak == 3


async def test_async_mode_with_an_async_function() -> None:
    peak = Peak()

    async def g(x: int) -> int:
        peak.enter()
        await asyncio.sleep(0.01)
        peak.leave()
        return x

    mapped = operomap(mode="async", workers=10, concurrency=2, cache=False, progress=False)(g)
    assert await mapped(range(20)) == list(range(20))
    assert peak.peak == 2


@pytest.mark.timeout(120)
def test_process_workers_share_the_callers_slots() -> None:
    mapped = operomap(mode="process", workers=4, concurrency=2, cache=False, progress=False)(h.span)
    spans = mapped(range(12))
    shrunk = [(s + 0.01, e - 0.01) for s, e in spans]  # wide margins for clock jitter
    assert _most_at_once(shrunk) == 2
    assert max(e for _, e in spans) - min(s for s, _ in spans) >= 12 / 2 * 0.15 * 0.9


def test_backoff_holds_no_slot(clock) -> None:
    seen: list[int] = []

    @opero(cache=False, concurrency=1, retries=1, min_delay=1, jitter=False)
    def f(x: int) -> int:
        if not seen:
            seen.append(x)
            raise ConnectionError("once")
        return x

    slots = f.__opero_judge__.slots  # type: ignore[attr-defined]
    during: list[int] = []
    real_sleep = clock.sleep

    def sleep(seconds: float) -> None:
        during.append(slots.running)
        real_sleep(seconds)

    clock.sleep = sleep
    from opero.core.clock import CLOCK

    CLOCK.sleep = sleep
    assert f(5) == 5
    assert during == [0] and slots.running == 0


async def test_a_cancelled_waiter_gives_its_slot_back() -> None:
    slots = RunningLimit(1)
    await slots.acquire_async()
    waiter = asyncio.ensure_future(slots.acquire_async())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    slots.release()
    assert slots.running == 0
    await slots.acquire_async()  # free again, at once
    assert slots.running == 1


async def test_a_waiter_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    slots = RunningLimit(1)
    await slots.acquire_async()
    first = asyncio.ensure_future(slots.acquire_async())
    second = asyncio.ensure_future(slots.acquire_async())
    await asyncio.sleep(0)
    slots.release()  # handed to `first` (scheduled) ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.sleep(0)
    await asyncio.wait_for(second, 1)  # the slot went on to the next waiter
    assert slots.running == 1


def test_waiting_threads_do_not_spin() -> None:
    slots = RunningLimit(1)
    slots.acquire()
    started = time.process_time()
    waiter = threading.Thread(target=slots.acquire)
    waiter.start()
    time.sleep(0.3)
    slots.release()
    waiter.join(2)
    assert time.process_time() - started < 0.1
    assert slots.running == 1
