"""Another process holds the disk cache's SQLite write lock (a real lock, held by a real
process) while this process opens the cache for the first time: the open is bounded like
every other operation (about a second), the backend is then left alone for a few seconds
(calls run uncached at once), and it is used again by itself once the rest is over."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

from opero import OperoBackendWarning, opero, operomap

ROOT = Path(__file__).resolve().parents[1]
CALLS: list[int] = []  # module state: not part of the disk key

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def triple(x: int) -> int:
    CALLS.append(x)
    return 3 * x


def _create(directory: Path) -> None:
    """The cache exists (made by another process): this process has not opened it."""
    code = (
        "import sys; from opero import opero; from tests.test_disk_lock import triple; "
        "opero(cache_backend='disk', cache_dir=sys.argv[1])(triple)(-1)"
    )
    subprocess.run([sys.executable, "-c", code, str(directory)], cwd=ROOT, check=True)


def _hold_lock(directory: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(directory / "cache.db"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_first_open_under_a_held_lock_costs_about_a_second_for_a_whole_map(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    _create(cache)
    CALLS.clear()
    mapped = operomap(
        mode="thread", workers=8, progress=False, cache_backend="disk", cache_dir=cache
    )(triple)
    holder = _hold_lock(cache, 40)
    try:
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert mapped(range(30)) == [3 * x for x in range(30)]
        took = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    assert took < 8, f"30 items under a held lock took {took:.1f} s"  # the first build: 40 s
    reports = [w for w in caught if issubclass(w.category, OperoBackendWarning)]
    assert len(reports) == 1 and "locked" in str(reports[0].message)
    assert sorted(CALLS) == list(range(30))
    # the lock is gone, but the backend rests for a few seconds: calls run uncached at once
    start = time.monotonic()
    f = opero(cache_backend="disk", cache_dir=cache)(triple)
    assert f(100) == 300 and f(100) == 300
    assert CALLS.count(100) == 2 and time.monotonic() - start < 0.5
    time.sleep(6)  # the rest is over: the cache is used again, by itself
    assert f(101) == 303 and f(101) == 303 and f(-1) == -3
    assert CALLS.count(101) == 1 and -1 not in CALLS  # -1 was stored by the other process
