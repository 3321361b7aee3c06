"""P12 and P13: process maps of few, slow items.

P12: 4 items of 0.5 s on 4 workers, and 8 items of 0.25 s on 2 workers, against
``ProcessPoolExecutor.map`` (pool start included in both). P13: ``.iter()`` over 2 000 items
of 20 ms on 2 workers, time to the first result, against ``ProcessPoolExecutor`` submit +
``as_completed``.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from opero import operomap

__all__ = ["nap", "p12", "p13"]


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
