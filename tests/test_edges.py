"""Edge paths: unusual arguments, key functions, async variants, process exit with a hung
sync attempt, and BaseExceptions a user chose to retry."""

from __future__ import annotations

import asyncio
import enum
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from opero import AllFailedError, opero
from opero.cache.encoding import encode


class Small(int):
    pass


class Name(str):
    pass


class Ratio(float):
    pass


def test_int_str_float_subclasses_encode_with_their_type() -> None:
    assert encode(Small(3)) != encode(3)
    assert encode(Name("a")) != encode("a")
    assert encode(Ratio(0.5)) != encode(0.5)


class Mode(enum.Enum):
    A = "a"


async def test_async_unhashable_arguments_and_key_function() -> None:
    calls = 0

    @opero()
    async def f(items: list[int]) -> int:
        nonlocal calls
        calls += 1
        return sum(items)

    assert await f([1, 2]) == 3
    assert await f([1, 2]) == 3
    assert calls == 1

    @opero(cache_key=lambda items, mode: {"n": len(items), "mode": mode})  # unhashable key
    async def g(items: list[int], mode: Mode) -> int:
        nonlocal calls
        calls += 1
        return len(items)

    assert await g([1], Mode.A) == 1
    assert await g([9], Mode.A) == 1  # same key: same length, same mode
    assert calls == 2


def test_disk_cache_key_function(tmp_path: Path) -> None:
    calls = 0

    @opero(cache_backend="disk", cache_dir=tmp_path, cache_key=lambda user, request_id: user)
    def profile(user: str, request_id: int) -> str:
        nonlocal calls
        calls += 1
        return user.upper()

    assert profile("ann", 1) == "ANN"
    assert profile("ann", 2) == "ANN"
    assert calls == 1


def test_memory_lru_eviction_under_many_keys() -> None:
    @opero(cache_maxsize=3)
    def f(x: int) -> int:
        return x

    for x in range(10):
        f(x)
    assert len(f.__opero_cache__.store.data) == 3  # type: ignore[attr-defined]


async def test_async_on_cache_hit_and_disk(tmp_path: Path) -> None:
    hits: list[object] = []

    @opero(cache_backend="disk", cache_dir=tmp_path, on_cache_hit=hits.append)
    async def f(x: int) -> int:
        return x

    await f(1)
    await f(1)
    assert len(hits) == 1


def test_base_exception_retried_by_choice_is_wrapped_in_the_group() -> None:
    class Stop(BaseException):
        pass

    @opero(cache=False, retries=0, arg_fallback="v", retry_on=BaseException)
    def f(v: list[int]) -> int:
        raise Stop(v)

    with pytest.raises(AllFailedError) as info:
        f([1, 2])
    assert all(isinstance(e.__cause__, Stop) for e in info.value.exceptions)


def test_interpreter_exit_does_not_wait_for_a_hung_sync_attempt(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from opero import opero

            @opero(cache=False, retries=0, timeout=0.2)
            def hang():
                time.sleep(60)

            try:
                hang()
            except TimeoutError:
                print("timed out")
            """
        )
    )
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "timed out"
    assert time.monotonic() - t0 < 20  # the abandoned daemon thread did not hold the exit


def test_retry_after_header_in_bytes_and_mapping_without_get() -> None:
    from opero.core.retry import retry_after_of

    class Headers:
        def get(self, name: str) -> bytes | None:
            return b"3" if name == "Retry-After" else None

    class Response:
        headers = Headers()

    class Err(Exception):
        response = Response()

    assert retry_after_of(Err()) == 3

    class Broken:
        def get(self, name: str) -> None:
            raise RuntimeError("odd headers")

    class Response2:
        headers = Broken()

    class Err2(Exception):
        response = Response2()

    assert retry_after_of(Err2()) is None


async def test_async_map_inside_running_loop_of_sync_function() -> None:
    from opero import operomap

    @operomap(mode="thread", cache=False, progress=False, workers=2)
    def double(x: int) -> int:
        return x * 2

    # a sync map called from inside a running loop runs on a helper thread
    assert double([1, 2, 3]) == [2, 4, 6]
    await asyncio.sleep(0)
