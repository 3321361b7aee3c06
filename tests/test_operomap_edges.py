"""operomap edge paths: unhashable items, disk cache in process mode, failing input
generators, async failures and timeouts on worker threads and processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opero import OperomapError, operomap

from . import map_helpers as h


def mapped(fn: Any, **options: Any) -> Any:
    options.setdefault("progress", False)
    options.setdefault("workers", 2)
    return operomap(**options)(fn)


def test_process_mode_unhashable_items_are_cached_by_stable_key() -> None:
    f = mapped(h.total, mode="process")
    assert f([[1, 2], [3], [1, 2]]) == [3, 3, 3]
    assert f([[1, 2]]) == [3]


def test_process_mode_with_disk_cache(tmp_path: Path) -> None:
    f = mapped(h.square, mode="process", cache_backend="disk", cache_dir=tmp_path)
    assert f(range(5)) == [0, 1, 4, 9, 16]
    g = mapped(h.square, mode="process", cache_backend="disk", cache_dir=tmp_path)
    assert g(range(5)) == [0, 1, 4, 9, 16]


def _broken_input() -> Any:
    yield 1
    yield 2
    raise RuntimeError("the input broke")


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_failing_input_generator_raises_its_error(mode: str) -> None:
    f = mapped(h.square, mode=mode, cache=False)
    with pytest.raises(RuntimeError, match="the input broke"):
        f(_broken_input())
    with pytest.raises(RuntimeError, match="the input broke"):
        list(f.iter(_broken_input()))


async def test_failing_input_generator_async_iter() -> None:
    f = mapped(h.asquare, mode="async", cache=False)
    with pytest.raises(RuntimeError, match="the input broke"):
        async for _ in f.iter(_broken_input()):
            pass


@pytest.mark.parametrize("mode", ["thread", "process_async"])
async def test_async_failures_on_workers(mode: str) -> None:
    f = mapped(h.afail_on_three, mode=mode, cache=False, retries=0)
    with pytest.raises(OperomapError) as info:
        await f(range(5))
    assert isinstance(info.value.results[3], ValueError)


@pytest.mark.parametrize("mode", ["thread", "process_async", "async"])
async def test_async_timeout_on_workers(mode: str) -> None:
    f = mapped(h.aslow, mode=mode, cache=False, retries=0, timeout=0.3)
    with pytest.raises(OperomapError) as info:
        await f([0.0, 30.0, 0.0])
    results = info.value.results
    assert results[0] == 0.0 and results[2] == 0.0
    assert isinstance(results[1], TimeoutError)


def test_unordered_iter_with_return_exceptions() -> None:
    f = mapped(h.fail_on_three, cache=False, retries=0, ordered=False, return_exceptions=True)
    got = list(f.iter(range(6)))
    assert sorted(x for x in got if isinstance(x, int)) == [0, 1, 2, 4, 5]
    assert sum(isinstance(x, ValueError) for x in got) == 1
