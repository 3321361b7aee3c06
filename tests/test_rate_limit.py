"""A global rate limit, no bursts, never blocking the event loop."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from opero import Limit, opero
from opero.limits.rate import RateLimiter

from .recording import record_admissions


def test_reserve_spaces_admissions() -> None:
    lim = RateLimiter(4)
    assert [lim.reserve(10.0) for _ in range(4)] == [10.0, 10.25, 10.5, 10.75]
    assert lim.reserve(20.0) == 20.0  # idle time is not banked: no burst after a pause
    assert lim.reserve(20.0) == 20.25


def test_release_frees_a_slot_whatever_was_booked_after_it() -> None:
    lim = RateLimiter(1)
    a = lim.reserve(0.0)
    b = lim.reserve(0.0)
    c = lim.reserve(0.0)
    assert (a, b, c) == (0.0, 1.0, 2.0)
    lim.release(b)  # not the last booking: its time is free again
    assert lim.reserve(0.0) == 1.0  # the freed time, before the schedule moves on
    assert lim.reserve(0.0) == 3.0
    lim.release(2.0)
    assert lim.reserve(2.5) == 4.0  # what is left of [2, 3) is too short for a slot
    assert lim.reserve(2.5) == 5.0


def test_reserve_from_many_threads_never_shares_a_slot() -> None:
    lim = RateLimiter(100)
    got: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            t = lim.reserve(0.0)
            with lock:
                got.append(t)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got.sort()
    assert len(got) == 400
    assert all(b - a == pytest.approx(0.01) for a, b in zip(got, got[1:], strict=False))


def test_decorated_sync_waits_are_exact(clock) -> None:
    starts: list[float] = []

    @opero(cache=False, rate_limit=5)
    def f() -> None:
        starts.append(clock.now)

    for _ in range(5):
        f()
    assert clock.sleeps == pytest.approx([0.2, 0.2, 0.2, 0.2])
    assert [round(b - a, 9) for a, b in zip(starts, starts[1:], strict=False)] == [0.2] * 4


async def test_decorated_async_waits_are_exact(clock) -> None:
    @opero(cache=False, rate_limit=2)
    async def f() -> None:
        return None

    booked = record_admissions(f)
    await asyncio.gather(*(f() for _ in range(4)))
    assert [b - booked[0] for b in booked] == [0.0, 0.5, 1.0, 1.5]
    assert len(clock.sleeps) == 3  # the first admission is free, three waited


def test_limit_is_global_across_threads_real_time() -> None:
    """Integration (real time, wide margins): 8 threads share one 50/s limit."""
    starts: list[float] = []
    lock = threading.Lock()

    @opero(cache=False, rate_limit=50)
    def f() -> None:
        with lock:
            starts.append(time.monotonic())

    threads = [threading.Thread(target=lambda: [f() for _ in range(4)]) for _ in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - t0
    starts.sort()
    assert len(starts) == 32
    assert elapsed >= 31 / 50 * 0.95  # 31 spacings of 20 ms at least
    for w in (0.1, 0.25):  # no burst: no window of w holds more than ceil(R*w)+1
        for i, s in enumerate(starts):
            in_window = sum(1 for x in starts[i:] if x - s < w)
            assert in_window <= math.ceil(50 * w) + 1


async def test_limit_is_global_across_tasks_and_does_not_block_loop() -> None:
    """Integration (real time): 20 tasks at 40/s; the loop keeps ticking meanwhile."""
    starts: list[float] = []

    @opero(cache=False, rate_limit=40)
    async def f() -> None:
        starts.append(time.monotonic())

    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            ticks += 1
            await asyncio.sleep(0.005)

    tick_task = asyncio.create_task(ticker())
    await asyncio.gather(*(f() for _ in range(20)))
    stop = True
    await tick_task
    span = max(starts) - min(starts)
    assert span >= 19 / 40 * 0.95
    assert ticks >= 20  # ~0.475 s of waiting: a blocked loop would tick once or twice


async def test_cancelled_waiter_gives_back_its_slot(monkeypatch) -> None:
    from opero.core.clock import CLOCK

    now = [0.0]
    monkeypatch.setattr(CLOCK, "monotonic", lambda: now[0])
    hang = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await hang.wait()

    monkeypatch.setattr(CLOCK, "async_sleep", sleep)

    @opero(cache=False, rate_limit=1)
    async def f() -> int:
        return 1

    assert await f() == 1  # slot at 0.0
    waiting = asyncio.create_task(f())  # slot at 1.0, waits
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limiter = f.__opero_judge__.limiter  # type: ignore[attr-defined]
    assert limiter.reserve(0.0) == 1.0  # the cancelled slot was given back


def test_testing_mode_skips_waits_keeps_attempts(clock) -> None:
    from opero.testing import is_testing, set_testing

    n = 0

    @opero(cache=False, rate_limit=1, retries=2)
    def f() -> None:
        nonlocal n
        n += 1
        raise ConnectionError

    with set_testing():
        assert is_testing()
        with pytest.raises(ConnectionError):
            f()
        with set_testing(False):
            assert not is_testing()
        assert is_testing()
    assert not is_testing()
    assert n == 3
    assert clock.sleeps == []
    set_testing(True)
    assert is_testing()
    set_testing(False)
    assert not is_testing()


@pytest.mark.parametrize(
    ("limits", "first_wait"),
    [(2, 0.5), ([2, Limit(10, cost=lambda n=3: n)], 0.5), ([Limit(4, cost=lambda n=3: n)], 0.75)],
)
async def test_hundred_cancelled_waits_leave_no_debt(monkeypatch, limits, first_wait) -> None:
    """Each wait cancelled by ``asyncio.wait_for`` gives its slot back, whatever was booked
    after it: the next call waits as long as if the cancelled calls had never been made."""
    from opero.core.clock import CLOCK

    monkeypatch.setattr(CLOCK, "monotonic", lambda: 0.0)
    asked: list[float] = []
    hang = True

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        if hang:
            await asyncio.Event().wait()  # only a cancellation ends this wait

    monkeypatch.setattr(CLOCK, "async_sleep", sleep)

    @opero(cache=False, rate_limit=limits)
    async def f() -> int:
        return 1

    assert await f() == 1  # admitted at once
    outcomes = await asyncio.gather(
        *(asyncio.wait_for(f(), 0.02) for _ in range(100)), return_exceptions=True
    )
    assert all(isinstance(o, TimeoutError) for o in outcomes)
    assert len(asked) == 100
    hang = False
    asked.clear()
    assert await f() == 1
    assert asked == [pytest.approx(first_wait)]  # not 50 s
