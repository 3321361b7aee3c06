"""Map rate limits count attempt *starts*: busy workers never cause a burst when they free
up (2 workers, 10/s, the first two items taking 1 s: no 1-second window holds more than 11
starts), in thread and process modes. Real time, with wide margins."""

from __future__ import annotations

from pathlib import Path

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
def test_work_spreads_over_every_worker_from_the_first_item(tmp_path: Path) -> None:
    """Checked by order and counts, so a busy machine (slow worker start-up, a stalled
    process) cannot fail it; only a long deadline bounds the waits."""
    import time

    from tests.spread_helpers import gated, rendezvous

    # 4 items on 4 workers: each waits until all 4 have started, which only happens if
    # they run side by side, one per worker (the first build ran them on one worker)
    met = tmp_path / "met"
    met.mkdir()
    deadline = time.time() + 15
    mapped = operomap(mode="process", workers=4, cache=False, progress=False)(rendezvous)
    out = mapped([(str(met), i, 4, deadline) for i in range(4)])
    assert all(together for _, together in out), "the four items did not run side by side"
    assert len({pid for pid, _ in out}) == 4

    # .iter() hands out the first result before the items queued behind it finish: items
    # past the first 8 wait for the caller to open a gate on its first result (the first
    # build held the first result until a batch of hundreds was done)
    gate = tmp_path / "gate"
    streamed = operomap(mode="process", workers=2, cache=False, progress=False)(gated)
    deadline = time.time() + 15
    results = []
    for result in streamed.iter([(str(gate), i, deadline) for i in range(400)]):
        gate.touch()
        results.append(result)
    assert len(results) == 400
    assert all(results[8:]), "items finished before the first result was handed out"


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
