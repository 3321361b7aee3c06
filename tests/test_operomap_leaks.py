"""@operomap leaves nothing behind. Each ending is repeated in one interpreter and the
threads, file descriptors and child processes are counted before and after."""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time

import pytest

from opero import OperomapError, operomap
from tests.map_helpers import identity, sleep_then_return

#: measured without coverage's tracer and its multiprocessing patches, which change how long
#: objects and worker processes live (a CI run under coverage kept one map's workers for 20 s)
pytestmark = [pytest.mark.slow, pytest.mark.no_cover]


def _counts() -> tuple[int, int, int]:
    return (
        len(os.listdir("/proc/self/fd")),
        threading.active_count(),
        len(multiprocessing.active_children()),
    )


DETAILS: list[object] = []  # what was still open when a count stayed high (for messages)


def _fd_targets() -> list[str]:
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # the listing's own descriptor, closed meanwhile
            pass
    return sorted(targets)


def _threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


def _settled(before: tuple[int, int, int], slack: int = 2) -> tuple[int, int, int]:
    """The counts once the last ending has settled (workers may take a moment to exit; under
    coverage, a worker process saves its coverage data as it exits, which can take seconds
    when dozens exit together)."""
    deadline = time.monotonic() + 60
    while True:
        gc.collect()
        now = _counts()
        if all(n <= b + slack for n, b in zip(now, before, strict=True)):
            return now
        if time.monotonic() > deadline:
            DETAILS[:] = [_threads(), _fd_targets()]
            return now
        time.sleep(0.1)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("mode", ["process", "thread"])
def test_iter_abandoned_early_fifty_times(mode: str) -> None:
    mapped = operomap(mode=mode, workers=2, progress=False, cache=False)(identity)
    for x in mapped.iter(range(100)):
        break
    before = _settled(_counts(), slack=10**6)
    for i in range(50):
        it = mapped.iter(range(1_000))
        for x in it:
            break
        if i % 2:
            del it  # collected
        else:
            it.close()  # closed
    after = _settled(before)
    assert after[0] <= before[0] + 2, (before, after, DETAILS)  # fds (the first build: 18 -> 190)
    assert after[1] <= before[1] + 1, (before, after, DETAILS)  # threads (7 -> 96)
    assert after[2] <= before[2], (before, after, DETAILS)  # worker processes


@pytest.mark.timeout(240)
def test_iter_stopped_by_an_exception_in_the_consumer_fifty_times() -> None:
    """The consumer's exception drops the iterator, which closes the map: nothing remains
    (measured without the coverage tracer, which keeps references of its own alive)."""
    mapped = operomap(mode="process", workers=2, progress=False, cache=False)(identity)
    with pytest.raises(ZeroDivisionError):
        for x in mapped.iter(range(100)):
            1 / 0
    before = _settled(_counts(), slack=10**6)
    for _ in range(50):
        with pytest.raises(ZeroDivisionError):
            for x in mapped.iter(range(1_000)):
                1 / 0
    after = _settled(before)
    assert after[0] <= before[0] + 2, (before, after, DETAILS)
    assert after[1] <= before[1] + 1, (before, after, DETAILS)
    assert after[2] <= before[2], (before, after, DETAILS)


@pytest.mark.timeout(240)
def test_timeout_kills_fifty_times() -> None:
    mapped = operomap(
        mode="process", workers=1, progress=False, cache=False, retries=0, timeout=0.1
    )(sleep_then_return)
    with pytest.raises(OperomapError):
        mapped([5.0])
    before = _settled(_counts(), slack=10**6)
    for _ in range(50):
        with pytest.raises(OperomapError):
            mapped([5.0])
    after = _settled(before)
    assert after[0] <= before[0] + 2, (before, after, DETAILS)
    assert after[1] <= before[1] + 1, (before, after, DETAILS)
    assert after[2] <= before[2], (before, after, DETAILS)


@pytest.mark.timeout(240)
def test_async_iter_abandoned_early_fifty_times() -> None:
    import asyncio

    from tests.map_helpers import async_identity

    mapped = operomap(mode="process_async", workers=2, progress=False, cache=False)(async_identity)

    async def take_one() -> None:
        async for _x in mapped.iter(range(1_000)):
            break

    asyncio.run(take_one())
    before = _settled(_counts(), slack=10**6)
    for _ in range(50):
        asyncio.run(take_one())
    after = _settled(before)
    assert after[0] <= before[0] + 2, (before, after, DETAILS)
    assert after[1] <= before[1] + 1, (before, after, DETAILS)
    assert after[2] <= before[2], (before, after, DETAILS)
