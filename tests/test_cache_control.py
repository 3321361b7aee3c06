"""``f.cache_delete(...)`` and ``f.cache_contains(...)``: the entry of one call, on the memory
and disk backends (Redis: tests/test_cache_control_redis.py), for sync and async functions."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from opero import OperoBackendWarning, opero

CALLS: list[Any] = []  # module-level: a closure's values are part of disk keys

#: call forms of ``f(x, y=2)``: (args, kwargs)
FORMS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1,), {}),
    ((), {"x": 1}),
    ((1, 2), {}),
    ((1,), {"y": 2}),
    ((), {"y": 2, "x": 1}),
    ((1, 3), {}),
    ((2,), {}),
    (([1, 2],), {}),
    (([1, 2],), {"y": 2}),
]


def options(backend: str, tmp_path: Path, **more: Any) -> dict[str, Any]:
    if backend == "disk":
        more["cache_dir"] = tmp_path
    return {"cache_backend": backend, "retries": 0, **more}


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.clear()


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_delete_then_call_recomputes(backend: str, tmp_path: Path) -> None:
    @opero(**options(backend, tmp_path))
    def f(x: int) -> int:
        CALLS.append(x)
        return x * 10

    assert f.cache_contains(1) is False
    assert f.cache_delete(1) is False
    assert f(1) == 10
    assert f.cache_contains(1) is True
    assert f.cache_contains(2) is False
    assert f(1) == 10 and CALLS == [1]  # a hit
    assert f.cache_delete(1) is True
    assert f.cache_contains(1) is False
    assert f.cache_delete(1) is False  # already gone
    assert f(1) == 10
    assert CALLS == [1, 1]  # recomputed
    f(2)
    assert f.cache_delete(2) is True
    assert f.cache_contains(1) is True  # only that call's entry went


@pytest.mark.parametrize("backend", ["memory", "disk"])
@pytest.mark.parametrize("stored", range(len(FORMS)))
def test_same_key_as_the_call(backend: str, stored: int, tmp_path: Path) -> None:
    """Whatever the form (positional, keyword, default, unhashable), ``cache_contains`` says
    whether that very call would hit, and ``cache_delete`` removes what the call would read."""

    @opero(**options(backend, tmp_path))
    def f(x: Any, y: int = 2) -> str:
        CALLS.append((x, y))
        return f"{x}-{y}"

    args, kwargs = FORMS[stored]
    for other_args, other_kwargs in FORMS:
        f.cache_clear()
        f(*args, **kwargs)
        said = f.cache_contains(*other_args, **other_kwargs)
        before = len(CALLS)
        f(*other_args, **other_kwargs)
        assert said == (len(CALLS) == before), (args, kwargs, other_args, other_kwargs)
        f.cache_clear()
        f(*args, **kwargs)
        deleted = f.cache_delete(*other_args, **other_kwargs)
        before = len(CALLS)
        f(*args, **kwargs)
        assert deleted == (len(CALLS) > before), (args, kwargs, other_args, other_kwargs)
    if backend == "memory":  # keys as functools.lru_cache: f(1) and f(x=1) are two entries
        f.cache_clear()
        f(1)
        assert f.cache_contains(1) and not f.cache_contains(x=1)
    else:  # disk keys bind the arguments: every spelling of one call is one entry
        f.cache_clear()
        f(1)
        assert f.cache_contains(x=1) and f.cache_contains(1, y=2)


@pytest.mark.parametrize("backend", ["memory", "disk"])
def test_with_cache_key(backend: str, tmp_path: Path) -> None:
    @opero(**options(backend, tmp_path, cache_key=lambda x, verbose=False: None if x < 0 else x))
    def f(x: int, verbose: bool = False) -> int:
        CALLS.append(x)
        return x + 1

    f(5, verbose=True)
    assert f.cache_contains(5) is True  # the key is what cache_key returns
    assert f.cache_contains(6, verbose=True) is False
    assert f.cache_delete(5, False) is True
    f(5)
    assert CALLS == [5, 5]
    f(-1)  # cache_key returned None: never cached
    assert f.cache_contains(-1) is False
    assert f.cache_delete(-1) is False


class Box:
    def __init__(self, size: int) -> None:
        self.size = size

    @opero(retries=0)
    def grow(self, by: int) -> int:
        CALLS.append(by)
        return self.size + by


def test_method_self_is_part_of_the_key() -> None:
    a, b = Box(1), Box(1)
    assert a.grow(2) == 3
    assert Box.grow.cache_contains(a, 2) is True
    assert Box.grow.cache_contains(b, 2) is False  # memory keys self by identity
    assert Box.grow.cache_delete(b, 2) is False
    assert a.grow.cache_contains(2) is False  # the bound method forwards without its self
    assert a.grow.cache_contains(a, 2) is True
    assert Box.grow.cache_delete(a, 2) is True
    assert a.grow(2) == 3
    assert CALLS == [2, 2]


def test_cache_false_says_nothing_is_stored() -> None:
    @opero(cache=False)
    def f(x: int) -> int:
        return x

    f(1)
    assert f.cache_contains(1) is False
    assert f.cache_delete(1) is False


def test_memory_entry_expires_on_the_store_clock(clock: Any) -> None:
    @opero(cache_ttl=10)
    def f(x: int) -> int:
        CALLS.append(x)
        return x

    f(1)
    clock.advance(9.9)
    assert f.cache_contains(1) is True
    clock.advance(0.2)
    assert f.cache_contains(1) is False
    assert f.cache_delete(1) is False  # an expired entry is no entry
    f(1)
    assert CALLS == [1, 1]
    assert f.cache_contains(1) is True


def test_disk_entry_expires(tmp_path: Path) -> None:
    @opero(cache_backend="disk", cache_dir=tmp_path, cache_ttl=1.0)
    def f(x: int) -> int:
        CALLS.append(x)
        return x

    f(1)
    assert f.cache_contains(1) is True
    time.sleep(1.6)
    assert f.cache_contains(1) is False
    assert f.cache_delete(1) is False
    f(1)
    assert CALLS == [1, 1]


@pytest.mark.parametrize("backend", ["memory", "disk"])
async def test_async_function_has_plain_methods(backend: str, tmp_path: Path) -> None:
    @opero(**options(backend, tmp_path))
    async def f(x: int, y: int = 0) -> int:
        CALLS.append(x)
        return x + y

    assert await f(1) == 1
    contains = f.cache_contains(1)
    assert contains is True  # a bool, not a coroutine
    assert f.cache_contains(2) is False
    assert f.cache_delete(1) is True
    assert f.cache_contains(1) is False
    assert await f(1) == 1
    assert CALLS == [1, 1]


def test_disk_that_fails_reports_like_a_lookup(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    @opero(cache_backend="disk", cache_dir=blocker / "sub")
    def f(x: int) -> int:
        return x

    with pytest.warns(OperoBackendWarning, match="disk backend failed"):
        assert f.cache_contains(1) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # at most one warning a minute, as for lookups
        assert f.cache_delete(1) is False
        assert f(1) == 1


def test_disk_damaged_entry_is_not_contained(tmp_path: Path) -> None:
    import sqlite3

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def f(x: int) -> int:
        CALLS.append(x)
        return x

    f(1)
    db = sqlite3.connect(tmp_path / "cache.db")
    with db:
        db.execute("UPDATE Cache SET value = ?", (b"damaged",))
    db.close()
    with pytest.warns(OperoBackendWarning, match="disk backend failed"):
        assert f.cache_contains(1) is False  # the call would miss it too
    assert f.cache_delete(1) is True  # but it is there, and goes
    f(1)
    assert CALLS == [1, 1]
