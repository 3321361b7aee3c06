"""Map rate limits count attempt *starts*: busy workers never cause a burst when they free
up (2 workers, 10/s, the first two items taking 1 s: no 1-second window holds more than 11
starts), in thread and process modes. Real time, with wide margins."""

from __future__ import annotations

import pytest

from opero import operomap
from tests.map_helpers import started_at

pytestmark = pytest.mark.slow


def _most_in_a_window(starts: list[float], window: float = 1.0) -> int:
    starts = sorted(starts)
    best = 0
    for i, t in enumerate(starts):
        j = i
        while j < len(starts) and starts[j] < t + window:
            j += 1
        best = max(best, j - i)
    return best


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_no_burst_when_busy_workers_free_up(mode: str) -> None:
    mapped = operomap(mode=mode, workers=2, rate_limit=10, cache=False, progress=False)(started_at)
    starts = mapped(range(24))
    assert _most_in_a_window(starts) <= 11, sorted(s - min(starts) for s in starts)
    # and the limit is still used: 24 starts at 10/s after the first second
    assert max(starts) - min(starts) < 1.0 + 24 / 10 + 1.5


@pytest.mark.timeout(120)
def test_work_spreads_over_every_worker_from_the_first_item() -> None:
    import time

    from tests.map_helpers import half_second, sleepy

    mapped = operomap(mode="process", workers=4, cache=False, progress=False)(half_second)
    finished = mapped(range(4))  # each item sleeps 0.5 s and returns when it finished
    # all four ran side by side (the first build ran them on one worker, 0.5 s apart); the
    # spread of finish times does not depend on how long worker start-up took on a busy host
    assert max(finished) - min(finished) < 0.35, sorted(f - min(finished) for f in finished)

    streamed = operomap(mode="process", workers=2, cache=False, progress=False)(sleepy)
    start = time.monotonic()
    first_at = None
    for _ in streamed.iter([0.02] * 400):
        first_at = time.monotonic() - start
        break
    assert first_at is not None and first_at < 1.0  # the first build: after 5 s for 2 000


@pytest.mark.timeout(120)
def test_unordered_process_map_yields_in_completion_order() -> None:
    from tests.map_helpers import sleepy

    mapped = operomap(mode="process", workers=2, cache=False, progress=False, ordered=False)(sleepy)
    out = mapped([1.0, 0.05, 0.05, 0.05])
    assert out[0] == 0.05 and sorted(out) == [0.05, 0.05, 0.05, 1.0]  # not input order


@pytest.mark.timeout(120)
def test_process_workers_start_lazily_and_fork_before_their_threads() -> None:
    """Never more worker processes than items in flight: 3 slow items on workers=8 start 3;
    the three are forked together, before any of their helper threads exist."""
    import os
    import threading

    from tests.map_helpers import pid_of

    forks = forks_with_threads = 0
    real_fork = os.fork

    def counting_fork() -> int:
        nonlocal forks, forks_with_threads
        forks += 1
        if any("pid_of" in t.name for t in threading.enumerate()):  # this map's threads
            forks_with_threads += 1
        return real_fork()

    mapped = operomap(mode="process", workers=8, cache=False, progress=False)(pid_of)
    os.fork = counting_fork
    try:
        pids = mapped([1, 2, 3])
    finally:
        os.fork = real_fork
    assert len(set(pids)) <= 3
    assert forks == 3  # the first build forked all eight
    assert forks_with_threads == 0
