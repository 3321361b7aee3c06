"""Storing results on disk from an async map costs about what ``diskcache.set`` +
``pickle.dumps`` of the same values costs (CPU of the whole process, all threads; the first
build paid 3 to 6 times that: a thread hop per lookup and per store, one transaction each;
now about 0.8 times). The margin is wide: the machine running the tests is shared."""

from __future__ import annotations

import asyncio
import pickle
import sys
import time
from pathlib import Path

import pytest

from opero import operomap

N = 1_000


async def answer(i: int) -> str:
    return f"{i:08d}:" + "x" * 191  # about 200 bytes


def _map_cpu(tmp_path: Path, backend: str, run: int) -> float:
    options = {"cache_dir": tmp_path / f"{backend}-{run}"} if backend == "disk" else {}
    mapped = operomap(mode="async", workers=64, progress=False, cache_backend=backend, **options)(
        answer
    )
    asyncio.run(mapped(range(-3, 0)))  # the database, the threads and imports exist
    start = time.process_time()
    assert asyncio.run(mapped(range(N)))[5] == asyncio.run(answer(5))
    return time.process_time() - start


def _peer_cpu(tmp_path: Path, run: int) -> float:
    import diskcache

    cache = diskcache.Cache(str(tmp_path / f"peer-{run}"))
    values = [asyncio.run(answer(i)) for i in range(N)]
    cache.set("warm", b"")
    start = time.process_time()
    for i, value in enumerate(values):
        cache.set(f"answer:{i}", pickle.dumps(value, protocol=5))
    took = time.process_time() - start
    cache.close()
    return took


@pytest.mark.skipif(
    sys.gettrace() is not None or "coverage" in sys.modules,
    reason="a line tracer (coverage) slows opero's Python code, not SQLite's C: the ratio is "
    "checked in the run without coverage (and by benchmark P24)",
)
def test_storing_an_async_maps_results_on_disk_costs_about_a_diskcache_set(
    tmp_path: Path,
) -> None:
    disk = min(_map_cpu(tmp_path, "disk", run) for run in range(3))
    memory = min(_map_cpu(tmp_path, "memory", run) for run in range(3))
    peer = min(_peer_cpu(tmp_path, run) for run in range(3))
    ours = (disk - memory) / N
    assert ours <= 2 * peer / N, (
        f"disk store {ours * 1e6:.0f} µs/item vs diskcache.set+pickle.dumps "
        f"{peer / N * 1e6:.0f} µs/item"
    )
