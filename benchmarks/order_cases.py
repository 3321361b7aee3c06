"""P26 (docs/performance.md): an ordered map does not stall behind one slow early item.
``operomap(mode="thread", workers=8, ordered=True)`` over 2 000 items that sleep 10 ms,
except item 3, which sleeps 2 s, against the same map with ``ordered=False``: the ordered
map must take at most 1.2 x the unordered one (best of ``repeat`` each, run alternately).
"""

from __future__ import annotations

import time
from typing import Any

from opero import operomap

__all__ = ["p26"]

ITEMS = 2_000
SLOW_AT = 3
SLOW, QUICK = 2.0, 0.01  #: seconds of the slow item and of every other one


def snooze(x: int) -> int:
    time.sleep(SLOW if x == SLOW_AT else QUICK)
    return x


def _timed(ordered: bool) -> float:
    mapped = operomap(mode="thread", workers=8, ordered=ordered, cache=False, progress=False)(
        snooze
    )
    start = time.perf_counter()
    results = mapped(range(ITEMS))
    took = time.perf_counter() - start
    if ordered:
        assert results == list(range(ITEMS)), "ordered results out of order"
    else:
        assert sorted(results) == list(range(ITEMS)), "results lost"
    return took


def p26(quick: bool, Row: Any) -> tuple[list[Any], dict[str, float]]:
    repeat = 1 if quick else 3
    ordered, unordered = [], []
    for _ in range(repeat):
        ordered.append(_timed(True))
        unordered.append(_timed(False))
    ours, theirs = min(ordered), min(unordered)
    case = f"P26 thread map, 8 workers, {ITEMS} x 10 ms, one 2 s item at index 3, ordered=True"
    rows = [Row(case, ours, "ordered=False", theirs, "<= 1.2", ours <= 1.2 * theirs, "s")]
    return rows, {"ordered s": ours, "unordered s": theirs}
