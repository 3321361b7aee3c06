"""Ordered maps without head-of-line stalls: one slow item early in an ``ordered=True`` map
does not stop later items from starting; results still come out in input order and the
input is still read lazily, within a stated bound.

Real workers (threads, processes, a thread pool executor, asyncio tasks); timing limits are
wide (the slow item gives up after many seconds, a quick map takes well under one).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from opero import OperomapError, operomap

GIVE_UP = 20.0  #: seconds the slow item waits for the last item to start, at most
#: finished results an ordered map holds for an earlier pending item, beyond its window of
#: items running or queued (the bound stated in the map driver's documentation)
HELD_MAX = 16_384


def _wait_for(marker: str) -> bool:
    """Poll for ``marker`` (a file) for up to GIVE_UP seconds; whether it appeared."""
    deadline = time.monotonic() + GIVE_UP
    while time.monotonic() < deadline:
        if os.path.exists(marker):
            return True
        time.sleep(0.005)
    return False


def slow_until_last(x: int, *, marker: str, slow: int, last: int) -> int:
    """Item ``slow`` runs until item ``last`` has started (-1 if it never does); the
    others are quick."""
    if x == last:
        Path(marker).touch()
    if x == slow:
        return x if _wait_for(marker) else -1
    return x


async def aslow_until_last(x: int, *, marker: str, slow: int, last: int) -> int:
    if x == last:
        Path(marker).touch()
    if x == slow:
        deadline = time.monotonic() + GIVE_UP
        while time.monotonic() < deadline:
            if os.path.exists(marker):
                return x
            await asyncio.sleep(0.005)
        return -1
    await asyncio.sleep(0)
    return x


# (mode, async function?, workers, items): more items than the window of 4 x workers
# (thread, async) or 2 048 x workers (process modes, executors) lets in before the fix
CASES = [
    ("thread", False, 4, 400),
    ("async", True, 4, 400),
    ("thread-async-fn", True, 4, 400),
    ("process", False, 2, 6_000),
    ("process_async", True, 2, 6_000),
    ("executor", False, 2, 6_000),
]


def _map(mode: str, is_async: bool, workers: int) -> tuple[Any, ThreadPoolExecutor | None]:
    fn = aslow_until_last if is_async else slow_until_last
    pool = None
    if mode == "executor":
        pool = ThreadPoolExecutor(workers)
        deco = operomap(executor=pool, workers=workers, cache=False, progress=False)
    else:
        real = "thread" if mode == "thread-async-fn" else mode
        deco = operomap(mode=real, workers=workers, cache=False, progress=False)
    return deco(fn), pool


@pytest.mark.parametrize(("mode", "is_async", "workers", "n"), CASES, ids=[c[0] for c in CASES])
def test_last_item_starts_while_an_early_one_runs(
    mode: str, is_async: bool, workers: int, n: int, tmp_path: Path
) -> None:
    """Item 1 runs until item n-1 has started: before the fix the window of items in flight
    filled up behind item 1 and item n-1 never started until item 1 gave up."""
    f, pool = _map(mode, is_async, workers)
    marker = str(tmp_path / "last-started")
    options = {"marker": marker, "slow": 1, "last": n - 1}
    try:
        if is_async:  # the map of an async function is awaited
            results = asyncio.run(f(range(n), **options))
        else:
            results = f(range(n), **options)
    finally:
        if pool is not None:
            pool.shutdown()
    assert results[1] == 1, "the last item never started while item 1 ran"
    assert results == list(range(n))


def test_thread_map_keeps_workers_busy_past_a_slow_item() -> None:
    """While one item is slow, the other workers go on through the input: far more than
    the window of 4 x workers items start before the slow item ends."""
    started = 0
    lock = threading.Lock()
    reached = threading.Event()

    @operomap(mode="thread", workers=4, cache=False, progress=False)
    def work(x: int) -> int:
        nonlocal started
        if x == 2:
            return x if reached.wait(GIVE_UP) else -started
        with lock:
            started += 1
            if started >= 300:
                reached.set()
        time.sleep(0.001)
        return x * 10

    results = work(range(400))
    assert results[2] == 2, f"only {-results[2]} items started while item 2 ran"
    assert results == [x if x == 2 else x * 10 for x in range(400)]


def test_input_read_lazily_with_a_stated_bound() -> None:
    """An infinite input with a stuck first item: the map reads ahead past the window (the
    other workers keep going) but never more than the window plus HELD_MAX results held for
    order; then it waits for the first item, and gives everything back in order."""
    consumed = 0
    at_release: list[int] = []

    def numbers() -> Any:
        nonlocal consumed
        for i in itertools.count():
            consumed += 1
            yield i

    @operomap(mode="thread", workers=2, cache=False, progress=False)
    def work(x: int) -> int:
        if x == 0:
            # stuck until the map stops reading the input (0.5 s without a new item)
            deadline = time.monotonic() + 60
            last, since = -1, time.monotonic()
            while time.monotonic() < deadline:
                if consumed != last:
                    last, since = consumed, time.monotonic()
                elif time.monotonic() - since > 0.5:
                    break
                time.sleep(0.01)
            at_release.append(consumed)
        return x

    window = work.__opero_map__.bound
    it = work.iter(numbers())
    got = list(itertools.islice(it, 20_000))
    it.close()  # abandoned: what is still in flight is dropped
    assert got == list(range(20_000))
    # by the time item 0 ended, the map had read far past its window, and not past the
    # window plus the results it holds for order (and one window being handed over)
    (read,) = at_release
    assert read > 10 * window
    assert read <= HELD_MAX + 3 * window


def test_failures_and_order_kept_past_a_slow_item() -> None:
    """Failed items behind a slow one keep their places; every success is returned."""
    release = threading.Event()

    @operomap(mode="thread", workers=4, cache=False, progress=False, retries=0)
    def work(x: int) -> int:
        if x == 0:
            return 0 if release.wait(GIVE_UP) else -1
        if x == 199:
            release.set()
        if x % 7 == 3:
            raise ValueError(x)
        return x

    with pytest.raises(OperomapError) as caught:
        work(range(200))
    results = caught.value.results
    assert len(results) == 200
    for x, value in enumerate(results):
        if x % 7 == 3:
            assert isinstance(value, ValueError) and value.args == (x,)
        else:
            assert value == x
