"""Streams on every cache backend (memory, disk, a real redis-server; pickle and JSON), across
processes, and in ``operomap`` (each item's result is the list of its items; an async
generator function makes the map async)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from opero import opero, operomap

RUNS: list[int] = []  # module-level: a closure's values are part of disk and Redis keys


@pytest.fixture(autouse=True)
def _runs() -> None:
    RUNS.clear()


def words(n: int) -> Iterator[str]:
    RUNS.append(n)
    yield from (f"w{i}" for i in range(n))


async def awords(n: int) -> AsyncIterator[str]:
    RUNS.append(n)
    for i in range(n):
        yield f"w{i}"


def options(backend: str, tmp_path: Path, url: str | None) -> dict[str, Any]:
    if backend == "disk":
        return {"cache_backend": "disk", "cache_dir": tmp_path}
    if backend == "redis":
        return {"cache_backend": "redis", "cache_url": url, "cache_namespace": str(tmp_path)}
    return {}


@pytest.fixture(params=["memory", "disk", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return options(request.param, tmp_path, url)


@pytest.mark.parametrize("serializer", ["pickle", "json"])
def test_sync_streams_are_stored_and_replayed(backend: dict[str, Any], serializer: str) -> None:
    extra = {"cache_serializer": serializer} if backend else {}
    f = opero(**backend, **extra)(words)
    assert list(f(3)) == ["w0", "w1", "w2"]
    assert list(f(3)) == ["w0", "w1", "w2"]
    assert list(f(0)) == [] and list(f(0)) == []
    assert RUNS == [3, 0]
    abandoned = f(4)
    next(abandoned)
    abandoned.close()
    assert not f.cache_contains(4)
    assert f.stats().cache_hits == 2
    f.cache_clear()


async def test_async_streams_are_stored_and_replayed(backend: dict[str, Any]) -> None:
    f = opero(**backend)(awords)
    assert [w async for w in f(2)] == ["w0", "w1"]
    replay = f(2)
    assert inspect.isasyncgen(replay)
    assert [w async for w in replay] == ["w0", "w1"]
    assert RUNS == [2]
    g = opero(**backend, cache_stream_max=1)(awords)
    assert [w async for w in g(3)] == ["w0", "w1", "w2"]
    assert not g.cache_contains(3)
    f.cache_clear()


SCRIPT = """
import sys
from opero import opero
ran = []
@opero(cache_backend="disk", cache_dir=sys.argv[1])
def words(n):
    ran.append(n)
    yield from (f"w{i}" for i in range(n))
print(list(words(3)), len(ran))
"""


def test_a_disk_cached_stream_is_replayed_in_another_process(tmp_path: Path) -> None:
    def run() -> str:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert run() == "['w0', 'w1', 'w2'] 1"
    assert run() == "['w0', 'w1', 'w2'] 0"  # replayed from disk: the generator never ran


def test_a_map_over_a_generator_function_gives_lists() -> None:
    f = operomap(progress=False)(words)
    assert f([2, 0, 1]) == [["w0", "w1"], [], ["w0"]]
    assert f([2, 0, 1]) == [["w0", "w1"], [], ["w0"]]
    assert sorted(RUNS) == [0, 1, 2]  # the second map was answered by the cache
    assert list(
        f.iter(
            [3],
        )
    ) == [["w0", "w1", "w2"]]


def test_a_process_map_over_a_generator_function() -> None:
    f = operomap(mode="process", workers=2, progress=False, cache=False)(words)
    assert f([1, 2]) == [["w0"], ["w0", "w1"]]


async def test_an_async_generator_function_makes_the_map_async() -> None:
    f = operomap(mode="async", progress=False)(awords)
    assert inspect.iscoroutinefunction(f)
    assert await f([2, 1]) == [["w0", "w1"], ["w0"]]
    assert await f([2, 1]) == [["w0", "w1"], ["w0"]]
    assert sorted(RUNS) == [1, 2]


def test_a_map_stream_is_retried_whole_and_long_ones_are_not_stored() -> None:
    failed: list[int] = []

    def once(n: int) -> Iterator[int]:
        yield 0
        if not failed:
            failed.append(n)
            raise ConnectionError("cut")  # nothing handed out yet: the item is retried
        yield from range(1, n)

    f = operomap(progress=False, retries=1, min_delay=0, cache_stream_max=2)(once)
    assert f([2, 3]) == [[0, 1], [0, 1, 2]]
    assert f.stats().retries == 1
    assert f.cache_info().currsize == 1  # three items: more than cache_stream_max


@operomap(mode="process", workers=2, progress=False, cache=False)
def spoken(n: int) -> Iterator[str]:
    yield from (f"s{i}" for i in range(n))


def test_a_process_map_decorated_where_it_is_defined() -> None:
    assert spoken([2, 1, 0]) == [["s0", "s1"], ["s0"], []]


def test_a_disk_cached_map_over_a_generator_function(tmp_path: Path) -> None:
    f = operomap(progress=False, cache_backend="disk", cache_dir=tmp_path)(words)
    assert f([2, 1]) == [["w0", "w1"], ["w0"]]
    g = operomap(progress=False, cache_backend="disk", cache_dir=tmp_path)(words)
    assert g([2, 1]) == [["w0", "w1"], ["w0"]]
    assert sorted(RUNS) == [1, 2] and g.stats().cache_hits == 2
