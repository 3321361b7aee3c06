"""P24: the CPU a disk cache adds to storing results.

``operomap(mode="async", workers=64, cache_backend="disk")`` over 2 000 distinct items of a
trivial coroutine returning about 200 bytes (all misses, so every item is stored): the CPU
per item beyond the same map with the memory cache, against ``diskcache.Cache.set`` +
``pickle.dumps`` of the same value. CPU is the process's (all threads), best of ``repeat``
runs, each map into a fresh directory.
"""

from __future__ import annotations

import asyncio
import pickle
import shutil
import tempfile
import time
from typing import Any

from opero import operomap

__all__ = ["p24"]

N = 2_000


async def answer(i: int) -> str:
    return f"{i:08d}:" + "x" * 191  # about 200 bytes


def _map_cpu(backend: str) -> float:
    """CPU seconds of one map over ``N`` fresh items."""
    directory = tempfile.mkdtemp(prefix="opero-p24-")
    options: dict[str, Any] = {"cache_backend": backend}
    if backend == "disk":
        options["cache_dir"] = directory
    try:
        mapped = operomap(mode="async", workers=64, progress=False, **options)(answer)
        asyncio.run(mapped(range(3)))  # imports, the database and the loop's executor exist
        start = time.process_time()
        asyncio.run(mapped(range(3, N + 3)))
        return time.process_time() - start
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _peer_cpu() -> float:
    import diskcache

    directory = tempfile.mkdtemp(prefix="opero-p24-peer-")
    cache = diskcache.Cache(directory)
    try:
        values = [asyncio.run(answer(i)) for i in range(N)]
        cache.set("warm", pickle.dumps("warm", protocol=5))
        start = time.process_time()
        for i, value in enumerate(values):
            cache.set(f"answer:{i}", pickle.dumps(value, protocol=5))
        return time.process_time() - start
    finally:
        cache.close()
        shutil.rmtree(directory, ignore_errors=True)


def p24(repeat: int, Row: Any) -> tuple[list[Any], dict[str, float]]:
    disk = min(_map_cpu("disk") for _ in range(repeat))
    memory = min(_map_cpu("memory") for _ in range(repeat))
    peer = min(_peer_cpu() for _ in range(repeat))
    ours_us = (disk - memory) / N * 1e6
    peer_us = peer / N * 1e6
    figures = {
        "disk map µs/item": disk / N * 1e6,
        "memory map µs/item": memory / N * 1e6,
        "disk store µs/item": ours_us,
        "diskcache.set+pickle.dumps µs/item": peer_us,
    }
    rows = [
        Row(
            "P24 disk store, async map of 2 000 misses (CPU/item)",
            ours_us,
            "diskcache.set+pickle.dumps",
            peer_us,
            "<= 1.5",
            ours_us <= 1.5 * peer_us,
            "µs",
        )
    ]
    return rows, figures
