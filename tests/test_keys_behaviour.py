"""Disk and Redis keys follow what a function does all the way down: functions captured in
closures, defaults and partials (to any depth), bound methods of C objects, module
constants the function reads, and the exact type of every argument."""

from __future__ import annotations

import collections
import functools
import operator
import os
import re
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opero import opero


def _make(n: int) -> Callable[[int], int]:
    def scale(x: int) -> int:
        return x * n

    return scale


def _apply(f: Callable[[int], int], x: int) -> int:
    return f(x)


def _twice(f: Callable[[int], int]) -> Callable[[int], int]:
    def both(x: int) -> int:
        return f(f(x))

    return both


@pytest.fixture(params=["disk", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "disk":
        return {"cache_backend": "disk", "cache_dir": tmp_path}
    url = request.getfixturevalue("redis_url")
    return {"cache_backend": "redis", "cache_url": url}


@pytest.mark.filterwarnings("error")  # every one of these is cached, none runs uncached
def test_captured_functions_are_keyed_by_their_own_identity(store: dict[str, Any]) -> None:
    hits: list[object] = []
    store = {**store, "on_cache_hit": hits.append}

    def in_cell(f: Callable[[int], int]) -> Callable[[int], int]:
        @opero(**store)
        def call(x: int) -> int:
            return f(x)

        return call

    def in_default(f: Callable[[int], int]) -> Callable[[int], int]:
        @opero(**store)
        def call(x: int, f: Callable[[int], int] = f) -> int:
            return f(x)

        return call

    def in_partial(f: Callable[[int], int]) -> Callable[[int], int]:
        return opero(**store)(functools.partial(_apply, f))

    for wrap in (in_cell, in_default, in_partial):
        assert wrap(_make(2))(3) == 6
        assert wrap(_make(10))(3) == 30  # the second build returned 6 here
        # two levels down: a closure around a closure
        assert wrap(_twice(_make(2)))(1) == 4
        assert wrap(_twice(_make(10)))(1) == 100
    assert hits == []
    for wrap in (in_cell, in_default, in_partial):  # and the same wrapper hits its entry
        assert wrap(_twice(_make(10)))(1) == 100
    assert len(hits) == 3

    def countdown(n: int) -> int:  # a function whose closure holds itself
        return 0 if n == 0 else countdown(n - 1) + 1

    cycle = opero(**store)(functools.partial(_apply, countdown))
    assert (cycle(3), cycle(3), len(hits)) == (3, 3, 4)


def test_bound_methods_of_c_objects_never_share(tmp_path: Path) -> None:
    def cached(f: Callable[..., Any]) -> Callable[..., Any]:
        return opero(cache_backend="disk", cache_dir=tmp_path)(f)

    assert cached(re.compile("a").findall)("aab") == ["a", "a"]
    assert cached(re.compile("b").findall)("aab") == ["b"]
    assert cached({"k": 1}.get)("k") == 1
    assert cached({"k": 2}.get)("k") == 2
    table: dict[str, int] = {}
    lookup = cached(table.get)
    assert lookup("k") is None
    table["k"] = 3  # the object it is bound to is read at each call
    assert lookup("k") == 3
    # an object with no stable encoding: uncached, said once, never shared
    with pytest.warns(UserWarning, match="runs uncached on the disk/Redis cache") as caught:
        ones = cached(collections.deque([1, 1]).count)
        one = cached(collections.deque([1]).count)
        first = cached(operator.itemgetter(0))  # a C callable object
        second = cached(operator.itemgetter(1))
    assert len(caught) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert (ones(1), one(1), ones(1)) == (2, 1, 2)
        assert (first("ab"), second("ab")) == ("a", "b")


APP = """
import os
from opero import opero

BASE_URL = {url!r}
SETTINGS = ("v1", 3, None, frozenset({{b"x"}}))
calls = 0
registry = {{}}
hits = []


@opero(cache_backend="disk", cache_dir=os.environ["APP_CACHE"], on_cache_hit=hits.append)
def fetch(x):
    global calls
    calls += 1  # state the function keeps: not part of its key
    registry[x] = calls  # mutable module state: not part of its key
    return f"{{BASE_URL}}/{{SETTINGS[0]}}/{{x}}"
"""

DRIVER = textwrap.dedent(
    """
    import app
    first, again = app.fetch(1), app.fetch(1)
    app.BASE_URL = "https://changed.example"  # read at each call
    print(first, again, len(app.hits), app.fetch(1))
    """
)


def _project(root: Path, url: str) -> Path:
    root.mkdir()
    (root / "app.py").write_text(APP.format(url=url))
    return root


def _run_in(project: Path, cache: Path) -> list[str]:
    env = {**os.environ, "APP_CACHE": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", DRIVER],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
        cwd=project,
    )
    return out.stdout.split()


def test_two_projects_with_different_module_constants_never_share(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one = _project(tmp_path / "one", "https://one.example")
    two = _project(tmp_path / "two", "https://two.example")
    runs = [_run_in(one, cache), _run_in(two, cache), _run_in(one, cache)]
    changed = "https://changed.example/v1/1"
    assert runs == [
        ["https://one.example/v1/1"] * 2 + ["1", changed],
        ["https://two.example/v1/1"] * 2 + ["1", changed],
        # a later run of the first project hits its own entries
        ["https://one.example/v1/1"] * 2 + ["2", changed],
    ]


class Table(dict[str, int]):
    """A callable dict subclass: its attributes change what it returns."""

    scale = 1

    def __call__(self, key: str) -> int:
        return self[key] * self.scale


class Tagged(dict[str, int]):
    pass


def test_every_type_is_tagged_and_container_subclasses_keep_their_attributes(
    tmp_path: Path,
) -> None:
    hits: list[object] = []

    @opero(cache_backend="disk", cache_dir=tmp_path, on_cache_hit=hits.append)
    def describe(x: object) -> str:
        return f"{type(x).__name__}:{getattr(x, 'label', '-')}"

    assert describe(b"a") == "bytes:-"
    assert describe(bytearray(b"a")) == "bytearray:-"
    assert describe({"a": 1}) == "dict:-"
    plain, red, blue = Tagged(a=1), Tagged(a=1), Tagged(a=1)
    red.label, blue.label = "red", "blue"  # type: ignore[attr-defined]
    labels = [describe(plain), describe(red), describe(blue), describe(red)]
    assert labels == ["Tagged:-", "Tagged:red", "Tagged:blue", "Tagged:red"]
    assert len(hits) == 1
    opaque = Tagged(a=1)
    opaque.label = object()  # type: ignore[attr-defined]
    assert describe(opaque) == describe(opaque)  # no stable key: it runs uncached
    assert len(hits) == 1

    double, triple = Table(a=1), Table(a=1)
    double.scale, triple.scale = 2, 3
    assert opero(cache_backend="disk", cache_dir=tmp_path)(double)("a") == 2
    assert opero(cache_backend="disk", cache_dir=tmp_path)(triple)("a") == 3


def test_a_function_capturing_an_opero_function_is_cached_on_disk(tmp_path) -> None:
    """A captured @opero function (and @opero stacked over @opero) is keyed by the function
    it wraps: the outer function is cached on disk, with no warning."""
    import warnings

    from opero import opero

    @opero(cache=False)
    def inner(x: int) -> int:
        return x * 2

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def outer(x: int) -> int:
        return inner(x) + 1

    stacked = opero(cache_backend="disk", cache_dir=tmp_path / "s")(opero(cache=False)(abs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert outer(3) == 7 and outer(3) == 7
        assert stacked(-2) == 2 and stacked(-2) == 2
    assert outer.stats().cache_hits == 1
    assert stacked.stats().cache_hits == 1
