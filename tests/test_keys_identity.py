"""Disk and Redis keys identify what the function does (code, defaults, closure
values, bound objects, the script of ``__main__``), never a memory address."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from opero import opero


def test_two_closures_never_share_an_entry(tmp_path: Path) -> None:
    def make(n: int):  # type: ignore[no-untyped-def]
        @opero(cache_backend="disk", cache_dir=tmp_path)
        def scale(x: int) -> int:
            return x * n

        return scale

    assert make(2)(3) == 6
    assert make(10)(3) == 30  # the first build returned 6 here
    assert make(2)(3) == 6


def test_two_lambdas_never_share_an_entry(tmp_path: Path) -> None:
    double = opero(cache_backend="disk", cache_dir=tmp_path)(lambda x: x * 2)
    square = opero(cache_backend="disk", cache_dir=tmp_path)(lambda x: x * x)
    assert double(5) == 10
    assert square(5) == 25


def test_defaults_are_part_of_the_key(tmp_path: Path) -> None:
    def make(base: int):  # type: ignore[no-untyped-def]
        def add(x: int, y: int = base) -> int:
            return x + y

        add.__closure__
        return opero(cache_backend="disk", cache_dir=tmp_path)(add)

    assert make(1)(1) == 2
    assert make(100)(1) == 101


def _add(a: int, b: int) -> int:
    return a + b


@dataclass(frozen=True)
class Multiplier:
    factor: int

    def __call__(self, x: int) -> int:
        return x * self.factor

    def apply(self, x: int) -> int:
        return x * self.factor + 1


def test_partials_bound_methods_and_callable_objects_key_what_they_bind(tmp_path: Path) -> None:
    plus1 = opero(cache_backend="disk", cache_dir=tmp_path)(functools.partial(_add, 1))
    plus5 = opero(cache_backend="disk", cache_dir=tmp_path)(functools.partial(_add, 5))
    assert (plus1(1), plus5(1)) == (2, 6)
    times2 = opero(cache_backend="disk", cache_dir=tmp_path)(Multiplier(2))
    times3 = opero(cache_backend="disk", cache_dir=tmp_path)(Multiplier(3))
    assert (times2(5), times3(5)) == (10, 15)
    apply2 = opero(cache_backend="disk", cache_dir=tmp_path)(Multiplier(2).apply)
    apply3 = opero(cache_backend="disk", cache_dir=tmp_path)(Multiplier(3).apply)
    assert (apply2(5), apply3(5)) == (11, 16)
    layer = plus1.__opero_cache__  # type: ignore[attr-defined]
    assert "0x" not in layer.prefix and "0x" not in str(layer.key((1,), {}))


class Opaque:
    def __call__(self, x: int) -> int:
        return x


def test_an_unencodable_bound_object_runs_uncached_with_one_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="runs uncached on the disk/Redis cache"):
        f = opero(cache_backend="disk", cache_dir=tmp_path)(Opaque())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1) == 1
        assert f(1) == 1
    assert f.__opero_cache__.key((1,), {}) is None  # type: ignore[attr-defined]
    # with cache_key the caller says what identifies a call
    g = opero(cache_backend="disk", cache_dir=tmp_path, cache_key=lambda x: x)(Opaque())
    assert g.__opero_cache__.key((1,), {}) is not None  # type: ignore[attr-defined]


def test_unencodable_closure_value_warns_once_and_runs_uncached(tmp_path: Path) -> None:
    lock = object()
    calls = [0]

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def f(x: int) -> int:
        calls[0] += 1
        return x if lock else -x

    with pytest.warns(UserWarning, match="closure captured"):
        assert f(1) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1) == 1
    assert calls[0] == 2


SCRIPT = """
import sys
from opero import opero

@opero(cache_backend="disk", cache_dir=sys.argv[1])
def fetch(x):
    return {answer!r}

print(fetch(1))
"""


ROOT = Path(__file__).parent.parent


def _run(path: Path, cache: Path | str) -> str:
    """Run a script in a real second process (the project root importable)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    out = subprocess.run(
        [sys.executable, str(path), str(cache)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    return out.stdout.strip()


def test_two_scripts_with_the_same_function_name_never_share(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text(SCRIPT.format(answer="from one"))
    two.write_text(SCRIPT.format(answer="from two"))
    assert _run(one, cache) == "from one"
    assert _run(two, cache) == "from two"


def test_editing_a_function_starts_a_fresh_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(answer="version 1"))
    assert _run(script, cache) == "version 1"
    script.write_text(SCRIPT.format(answer="version 2"))
    assert _run(script, cache) == "version 2"


PARTIAL_SCRIPT = textwrap.dedent(
    """
    import functools, sys
    from opero import opero
    from tests.test_keys_identity import Multiplier, _add

    hits = []
    options = dict(cache_backend="disk", cache_dir=sys.argv[1], on_cache_hit=hits.append)
    plus = opero(**options)(functools.partial(_add, 7))
    times = opero(**options)(Multiplier(4))
    print(plus(1), times(2), len(hits))
    """
)


def test_partial_and_callable_object_hit_in_another_process(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    script = tmp_path / "partial_job.py"
    script.write_text(PARTIAL_SCRIPT)
    runs = [_run(script, cache).split() for _ in range(2)]
    assert runs == [["8", "8", "0"], ["8", "8", "2"]]  # the second process hits both
    from opero.cache.disk import DiskStore

    store = DiskStore(cache, None, "x")
    rows = list(store._open().iterkeys())
    assert len(rows) == 2 and all("0x" not in str(k) for k in rows)


REDIS_SCRIPT = """
import sys
from opero import opero

@opero(cache_backend="redis", cache_url=sys.argv[1])
def fetch(x):
    return {answer!r}

print(fetch(1))
"""


def test_two_scripts_never_share_redis_entries(tmp_path: Path, redis_url: str) -> None:
    one, two = tmp_path / "one.py", tmp_path / "two.py"
    one.write_text(REDIS_SCRIPT.format(answer="from one"))
    two.write_text(REDIS_SCRIPT.format(answer="from two"))
    assert _run(one, redis_url) == "from one"
    assert _run(two, redis_url) == "from two"
    assert _run(one, redis_url) == "from one"
