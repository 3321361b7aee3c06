"""P23 (docs/performance.md): replaying a cached stream. ``@opero`` on an async generator
function of 100 items, every call a cache hit (the items replayed by a new async generator),
against iterating a list of the same 100 items through a plain async generator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from opero import opero

__all__ = ["p23"]

ITEMS = list(range(100))


async def through(items: list[int]) -> AsyncIterator[int]:
    for item in items:
        yield item


@opero
async def stream(n: int) -> AsyncIterator[int]:
    for item in ITEMS[:n]:
        yield item


async def _best(make: Any, number: int, repeat: int) -> float:
    """Best-of-``repeat`` nanoseconds per stream consumed whole."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter_ns()
        for _ in range(number):
            async for _item in make():
                pass
        best = min(best, (time.perf_counter_ns() - start) / number)
    return best


def p23(Row: Any, quick: bool) -> tuple[list[Any], dict[str, float]]:
    number, repeat = (2_000, 3) if quick else (20_000, 7)

    async def measure() -> tuple[float, float]:
        assert [i async for i in stream(100)] == ITEMS  # stored now
        ours = await _best(lambda: stream(100), number, repeat)
        plain = await _best(lambda: through(ITEMS), number, repeat)
        assert stream.stats().attempts == 1  # every measured call was a replay
        return ours, plain

    ours, plain = asyncio.run(measure())
    row = Row(
        "P23 cached async stream of 100 items, replay",
        ours,
        "a list through an async generator",
        plain,
        "<= 1.5",
        ours <= 1.5 * plain,
    )
    return [row], {"opero replay": ours, "plain async generator": plain}
