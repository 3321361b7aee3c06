"""``CacheLayer.refresh`` / ``refresh_async``: compute a key again without reading the cache,
then store it as a fill does. Driven through the layer of a decorated function, as the
decorator's per-call ``cache="refresh"`` mode drives it (``refreshing`` below)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from opero import opero
from opero.core.fast import core_async, core_sync

CALLS: list[Any] = []  # module-level: a closure's values are part of disk keys
GATE = threading.Event()
ENTERED = threading.Event()


@pytest.fixture(autouse=True)
def _reset() -> None:
    CALLS.clear()
    GATE.set()
    ENTERED.clear()
    slow.cache_clear()
    nested.cache_clear()


def refreshing(f: Any) -> Any:
    """``f`` with its cache in refresh mode: never read, always run, result stored."""
    layer = f.__opero_cache__
    if asyncio.iscoroutinefunction(f):
        acore = core_async(f.__opero_judge__)

        async def acall(*args: Any, **kwargs: Any) -> Any:
            key = layer.key(args, kwargs)
            if key is None:
                return await acore(args, kwargs)
            return await layer.refresh_async(key, acore, args, kwargs)

        return acall
    core = core_sync(f.__opero_judge__)

    def call(*args: Any, **kwargs: Any) -> Any:
        key = layer.key(args, kwargs)
        return core(args, kwargs) if key is None else layer.refresh(key, core, args, kwargs)

    return call


def options(backend: str, tmp_path: Path, **more: Any) -> dict[str, Any]:
    if backend == "disk":
        more["cache_dir"] = tmp_path
    return {"cache_backend": backend, "retries": 0, **more}


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_refresh_runs_and_stores(backend: str, tmp_path: Path) -> None:
    @opero(**options(backend, tmp_path))
    def f(x: int) -> tuple[int, int]:
        CALLS.append(x)
        return x, len(CALLS)

    assert f(1) == (1, 1)
    assert refreshing(f)(1) == (1, 2)  # the stored (1, 1) is not read
    assert f(1) == (1, 2)  # the refreshed value is what later calls hit
    assert refreshing(f)(x=2) == (2, 3)  # a key that had no entry
    assert f.cache_contains(x=2)
    assert len(CALLS) == 3


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_failed_refresh_keeps_the_entry(backend: str, tmp_path: Path) -> None:
    @opero(**options(backend, tmp_path))
    def f(x: int) -> int:
        CALLS.append(x)
        if len(CALLS) > 1:
            raise ValueError("down")
        return x

    assert f(1) == 1
    with pytest.raises(ValueError, match="down"):
        refreshing(f)(1)
    assert f(1) == 1  # still the entry from before


def test_streams_are_returned_not_stored() -> None:
    @opero(retries=0)
    def f(x: int) -> Any:
        CALLS.append(x)
        return iter([x, x])

    with pytest.warns(UserWarning, match="never cached"):
        assert list(refreshing(f)(1)) == [1, 1]
    assert not f.cache_contains(1)


def test_unserializable_value_is_returned_not_stored(tmp_path: Path) -> None:
    @opero(cache_backend="disk", cache_dir=tmp_path, retries=0)
    def f(x: int) -> Any:
        return threading.Lock()

    assert refreshing(f)(1) is not None
    assert not f.cache_contains(1)


def test_disk_that_fails_never_fails_the_refresh(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    @opero(cache_backend="disk", cache_dir=blocker / "sub", retries=0)
    def f(x: int) -> int:
        return x * 3

    with pytest.warns(Warning, match="disk backend failed"):
        assert refreshing(f)(2) == 6


def test_uncached_call_runs_without_storing() -> None:
    @opero(cache_key=lambda x: None, retries=0)
    def f(x: int) -> int:
        CALLS.append(x)
        return x

    assert refreshing(f)(4) == 4
    assert not f.cache_contains(4)


@opero(retries=0)
def slow(x: int) -> int:
    CALLS.append(x)
    n = len(CALLS)
    ENTERED.set()
    assert GATE.wait(30)
    return n


def wait_for(predicate: Any) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_refresh_does_not_take_an_older_computation() -> None:
    """A miss computing when the refresh starts: the refresh waits for it to end, then
    computes its own value, which is what stays stored."""
    layer = slow.__opero_cache__
    GATE.clear()
    out: dict[str, int] = {}
    miss = threading.Thread(target=lambda: out.setdefault("miss", slow(1)))
    miss.start()
    assert ENTERED.wait(30)
    refresh = threading.Thread(target=lambda: out.setdefault("refresh", refreshing(slow)(1)))
    refresh.start()
    wait_for(lambda: layer.flights.waiting() == 1)  # waiting, not computing
    assert len(CALLS) == 1
    GATE.set()
    miss.join(30)
    refresh.join(30)
    assert out == {"miss": 1, "refresh": 2}
    assert slow(1) == 2  # the refreshed value, stored after the older one


def test_misses_during_a_refresh_join_it() -> None:
    layer = slow.__opero_cache__
    slow(1)
    GATE.clear()
    ENTERED.clear()
    out: dict[str, int] = {}
    refresh = threading.Thread(target=lambda: out.setdefault("refresh", refreshing(slow)(1)))
    refresh.start()
    assert ENTERED.wait(30)
    slow.cache_delete(1)  # a miss now: it waits for the refresh instead of computing
    miss = threading.Thread(target=lambda: out.setdefault("miss", slow(1)))
    miss.start()
    wait_for(lambda: layer.flights.waiting() == 1)
    GATE.set()
    refresh.join(30)
    miss.join(30)
    assert out == {"refresh": 2, "miss": 2}
    assert len(CALLS) == 2


@opero(retries=0)
def nested(x: int) -> int:
    CALLS.append(x)
    if len(CALLS) == 1:
        return refreshing(nested)(x) + 100  # refreshes the key it is computing
    return len(CALLS)


def test_refresh_inside_its_own_computation_does_not_wait_on_itself() -> None:
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(nested(1)), daemon=True)
    worker.start()
    worker.join(30)
    assert done == [102]
    assert nested(1) == 102  # the outer call stored last


@pytest.mark.parametrize("backend", ["memory", "disk"])
async def test_async_refresh(backend: str, tmp_path: Path) -> None:
    @opero(**options(backend, tmp_path))
    async def f(x: int) -> int:
        CALLS.append(x)
        return len(CALLS)

    assert await f(1) == 1
    assert await refreshing(f)(1) == 2
    assert await f(1) == 2
    assert f.cache_contains(1)


async def test_async_refresh_waits_for_an_older_task() -> None:
    gate = asyncio.Event()

    @opero(retries=0)
    async def f(x: int) -> int:
        CALLS.append(x)
        n = len(CALLS)
        await gate.wait()
        return n

    miss = asyncio.create_task(f(1))
    while not CALLS:
        await asyncio.sleep(0.001)
    refresh = asyncio.create_task(refreshing(f)(1))
    layer = f.__opero_cache__
    while layer.flights.waiting() != 1:
        await asyncio.sleep(0.001)
    assert len(CALLS) == 1
    gate.set()
    assert await asyncio.wait_for(miss, 30) == 1
    assert await asyncio.wait_for(refresh, 30) == 2
    assert await f(1) == 2
