"""@operomap's exact crash accounting: a worker that dies fails only the attempt it was running
(a counted attempt), attempts it had finished are never run again, attempts queued behind it
run once, without counting. Real worker processes killed with ``os._exit``; each run is
logged to a file, so every test counts real executions."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from opero import OperomapError, WorkerCrashedError, operomap
from tests import map_helpers as h

pytestmark = pytest.mark.timeout(120)


def _runs(log: Path) -> Counter[int]:
    return Counter(int(line) for line in log.read_text().split())


def _warm(mapped: object, log: Path) -> None:
    """Measure an attempt first, so later maps send batches of many attempts."""
    mapped([(str(log) + ".warm", i, -1, 0) for i in range(200)])  # type: ignore[operator]


@pytest.mark.parametrize("retries", [0, 1])
def test_finished_attempts_never_run_again(tmp_path: Path, retries: int) -> None:
    log = tmp_path / "runs"
    mapped = operomap(mode="process", workers=1, cache=False, retries=retries, min_delay=0)(
        h.logged_run
    )
    _warm(mapped, log)
    items = [(str(log), i, 150, 0) for i in range(300)]
    if retries == 0:
        with pytest.raises(OperomapError) as info:
            mapped(items)
        results = info.value.results
        assert isinstance(results[150], WorkerCrashedError)
        assert [r for i, r in enumerate(results) if i != 150] == [i for i in range(300) if i != 150]
    else:
        assert mapped(items) == list(range(300))  # the crash was attempt 1; attempt 2 passed
    runs = _runs(log)
    assert runs[150] == 1 + retries  # the crash counted as an attempt
    assert all(runs[i] == 1 for i in range(300) if i != 150), {
        i: n for i, n in runs.items() if n != 1
    }


def test_large_outcomes_sent_ahead_are_kept_too(tmp_path: Path) -> None:
    """Outcomes too large for the shared buffer go over the pipe at once; a crash later in
    the batch keeps them as well."""
    log = tmp_path / "runs"
    mapped = operomap(mode="process", workers=1, cache=False, retries=0)(h.logged_run)
    _warm(mapped, log)
    items = [(str(log), i, 40, 300_000) for i in range(60)]  # 300 kB each: the buffer is 1 MiB
    with pytest.raises(OperomapError) as info:
        mapped(items)
    results = info.value.results
    assert isinstance(results[40], WorkerCrashedError)
    assert all(r == "x" * 300_000 for i, r in enumerate(results) if i != 40)
    runs = _runs(log)
    assert runs[40] == 1 and all(runs[i] == 1 for i in range(60))


def test_async_batches_keep_finished_attempts(tmp_path: Path) -> None:
    log = tmp_path / "runs"
    mapped = operomap(mode="process_async", workers=1, cache=False, retries=0)(h.alogged_run)
    asyncio.run(mapped([(str(log) + ".warm", i, -1, 0) for i in range(100)]))
    with pytest.raises(OperomapError) as info:
        asyncio.run(mapped([(str(log), i, 50, 0) for i in range(120)]))
    results = info.value.results
    assert isinstance(results[50], WorkerCrashedError)
    runs = _runs(log)
    assert all(n == 1 for n in runs.values()), {i: n for i, n in runs.items() if n != 1}
    ok = [i for i, r in enumerate(results) if r == i]
    crashed = [i for i, r in enumerate(results) if isinstance(r, WorkerCrashedError)]
    assert sorted(ok + crashed) == list(range(120))  # every item ended, once
