"""P12, P13: process maps of few, slow items; P14: async map overhead (docs/performance.md).

P12: 4 items of 0.5 s on 4 workers, and 8 items of 0.25 s on 2 workers, against
``ProcessPoolExecutor.map`` (pool start included in both). P13: ``.iter()`` over 2 000 items
of 20 ms on 2 workers, time to the first result, against ``ProcessPoolExecutor`` submit +
``as_completed``. P14: async mode over 100 000 ``asyncio.sleep(0)`` items on 100 workers against
100 worker coroutines pulling from one iterator (time, and the peak of what the map allocates,
each in a fresh process; tracemalloc's peak, because the peak RSS of either side does not move
measurably above the interpreter's start-up peak).
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from opero import operomap

__all__ = ["nap", "p12", "p13", "p14"]


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _timed(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def p12(repeat: int, Row: Any) -> tuple[list[Any], dict[str, float]]:
    rows, figures = [], {}
    for workers, n, seconds in ((4, 4, 0.5), (2, 8, 0.25)):
        items = [seconds] * n
        ours_map = operomap(mode="process", workers=workers, cache=False, progress=False)(nap)

        def peer(w: int = workers, its: list[float] = items) -> None:
            with ProcessPoolExecutor(w) as pool:
                list(pool.map(nap, its))

        ours = min(_timed(lambda m=ours_map, its=items: m(its)) for _ in range(repeat))
        theirs = min(_timed(peer) for _ in range(repeat))
        case = f"P12 process map {n} x {seconds} s on {workers} workers"
        figures[case] = ours
        rows.append(
            Row(case, ours * 1e3, "PPE.map", theirs * 1e3, "<= 1.2", ours <= 1.2 * theirs, "ms")
        )
    return rows, figures


def p13(repeat: int, Row: Any) -> tuple[list[Any], dict[str, float]]:
    items = [0.02] * 2_000
    mapped = operomap(mode="process", workers=2, cache=False, progress=False)(nap)

    def ours() -> float:
        start = time.perf_counter()
        for _ in mapped.iter(items):
            return time.perf_counter() - start
        return float("inf")

    def peer() -> float:
        start = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            futures = [pool.submit(nap, s) for s in items]
            for _ in as_completed(futures):
                first = time.perf_counter() - start
                for f in futures:
                    f.cancel()
                return first
        return float("inf")

    o = min(ours() for _ in range(repeat))
    p = min(peer() for _ in range(repeat))
    case = "P13 process .iter() 2 000 x 20 ms: first result"
    rows = [Row(case, o * 1e3, "PPE submit+as_completed", p * 1e3, "<= 2", o <= 2 * p, "ms")]
    return rows, {"opero": o, "PPE": p}


_P14 = """
import asyncio, sys, time
from opero import operomap

async def tick(x):
    await asyncio.sleep(0)
    return x

async def peer(items, workers):
    it = iter(items)
    out = []
    async def worker():
        for x in it:
            out.append(await tick(x))
    await asyncio.gather(*(worker() for _ in range(workers)))
    return out

ours = operomap(mode="async", workers=100, cache=False, progress=False)(tick)

async def main(which, n, memory):
    if memory:  # peak of what the map allocates (tracemalloc; a run of its own: it is slow)
        import tracemalloc
        tracemalloc.start()
    start = time.perf_counter()
    if which == "ours":
        out = await ours(range(n))
    else:
        out = await peer(range(n), 100)
    took = time.perf_counter() - start
    assert len(out) == n
    peak = 0
    if memory:
        peak = tracemalloc.get_traced_memory()[1]
    print(took, peak)

asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "memory"))
"""


def _p14_run(which: str, n: int, memory: bool = False) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", _P14, which, str(n), "memory" if memory else "time"],
        capture_output=True,
        text=True,
        check=True,
    )
    took, peak = out.stdout.split()
    return float(took), float(peak) / 2**20


def p14(repeat: int, Row: Any, n: int = 100_000) -> tuple[list[Any], dict[str, float]]:
    o = min(_p14_run("ours", n)[0] for _ in range(repeat))
    p = min(_p14_run("peer", n)[0] for _ in range(repeat))
    o_mb = _p14_run("ours", n, memory=True)[1]
    p_mb = _p14_run("peer", n, memory=True)[1]
    case = f"P14 async map {n:,} x sleep(0), 100 workers"
    rows = [
        Row(case, o * 1e3, "100 worker coroutines", p * 1e3, "<= 1.5", o <= 1.5 * p, "ms"),
        Row(
            "P14 same: peak memory allocated by the map (tracemalloc)",
            o_mb,
            "100 worker coroutines",
            p_mb,
            "<= 2",
            o_mb <= 2 * p_mb,
            "MB",
        ),
    ]
    return rows, {"opero": o, "peer": p, "opero MB": o_mb, "peer MB": p_mb}
