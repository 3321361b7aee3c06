"""What deadline-cut calls leave behind: the sync attempts they abandon end on their own
helper threads and nothing else stays (no thread, no file descriptor, no deadline left set
for later calls)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import opero
from opero import DeadlineExceededError

REPEAT = 30
SLEEP = 0.2


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settle(baseline: int, within: float = 5.0) -> int:
    """The thread count once it is back at ``baseline`` (or after ``within`` seconds)."""
    end = time.monotonic() + within
    while threading.active_count() > baseline and time.monotonic() < end:
        time.sleep(0.05)
    return threading.active_count()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_deadline_cut_sync_calls_leave_no_thread_and_no_descriptor() -> None:
    ran: list[float] = []

    def slow(i: int) -> int:
        time.sleep(SLEEP)
        ran.append(time.monotonic())
        return i

    f = opero.opero(cache=False, deadline=0.05, retries=3, min_delay=0.01)(slow)
    with pytest.raises(DeadlineExceededError):
        f(-1)  # warm-up: whatever a first call sets up once is in the baseline
    time.sleep(SLEEP + 0.3)
    threads, fds = threading.active_count(), _fds()
    most = 0
    start = time.monotonic()
    for i in range(REPEAT):
        with pytest.raises(DeadlineExceededError) as info:
            f(i)
        assert isinstance(info.value.__cause__, TimeoutError)
        most = max(most, threading.active_count() - threads)
    took = time.monotonic() - start
    assert took < REPEAT * SLEEP  # the calls did not wait for their attempts
    # the abandoned attempts were still sleeping on their helper threads (and only they)
    assert 1 <= most <= SLEEP / 0.05 + 2
    time.sleep(0.5)
    assert _settle(threads) == threads
    assert _fds() <= fds  # nothing left open (what earlier tests left may close meanwhile)
    assert len(ran) == REPEAT + 1  # every abandoned attempt ran to its end
    assert f.stats().deadlines == REPEAT + 1
    # no deadline is left set: a later call without one may take its time
    g = opero.opero(cache=False, retries=0)(slow)
    assert g(7) == 7


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_deadline_cut_async_calls_leave_nothing() -> None:
    cancelled: list[int] = []

    async def slow(i: int) -> int:
        try:
            await asyncio.sleep(SLEEP)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    f = opero.opero(cache=False, deadline=0.05, retries=3, min_delay=0.01)(slow)

    async def main(n: int) -> int:
        tasks = len(asyncio.all_tasks())
        for i in range(n):
            with pytest.raises(DeadlineExceededError):
                await f(i)
        return len(asyncio.all_tasks()) - tasks

    asyncio.run(main(2))  # warm-up (the loop's own descriptors are in the baseline)
    threads, fds = threading.active_count(), _fds()
    cancelled.clear()
    assert asyncio.run(main(REPEAT)) == 0
    assert cancelled == list(range(REPEAT))  # every attempt was really cancelled
    assert _settle(threads) == threads
    assert _fds() <= fds  # nothing left open (what earlier tests left may close meanwhile)
