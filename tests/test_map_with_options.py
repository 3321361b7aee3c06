"""``with_options`` on ``@operomap`` functions: per-map changes sharing the map's state."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from opero import RejectedResultError, operomap


def count(x: int) -> str:
    return f"{x}-{uuid.uuid4()}"  # a new value each time it runs, in any process


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_cache_off_and_refresh_share_the_maps_cache_and_stats(mode: str) -> None:
    m = operomap(mode=mode, workers=2, progress=False)(count)
    first = m([1, 2])
    assert m([1, 2]) == first  # hits
    off = m.with_options(cache=False)
    fresh = m.with_options(cache="refresh")
    assert off is m.with_options(cache=False)
    assert off([1, 2]) != first and m([1, 2]) == first  # neither read nor written
    refreshed = fresh([1, 2])
    assert refreshed != first and m([1, 2]) == refreshed  # not read, stored
    assert m.stats().calls == 12 and m.stats().cache_hits == 6


def test_retries_and_result_checks_per_map() -> None:
    seen: list[int] = []

    def work(x: int) -> int:
        seen.append(x)
        raise ValueError(x)

    m = operomap(mode="thread", workers=2, progress=False, retries=3, min_delay=0)(work)
    quick = m.with_options(retries=0)
    with pytest.raises(Exception):
        quick([1, 2])
    assert sorted(seen) == [1, 2]
    picky = operomap(mode="thread", progress=False, retries=1, min_delay=0, cache=False)(
        lambda x: x
    ).with_options(retry_on_result=lambda r: r > 1)
    got = operomap(mode="thread", progress=False)(lambda x: x)  # unrelated map stays plain
    assert got([5]) == [5]
    with pytest.raises(Exception) as info:
        picky([1, 2])
    assert isinstance(info.value.exceptions[0], RejectedResultError)  # type: ignore[attr-defined]


async def test_async_maps_have_variants_too() -> None:
    async def twice(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    m: Any = operomap(mode="async", progress=False)(twice)
    assert await m.with_options(cache=False)([1, 2]) == [2, 4]
    with pytest.raises(TypeError, match="workers"):
        m.with_options(workers=3)
