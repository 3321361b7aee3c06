"""Streams (sync): a decorated generator function is retried until its first item; after it,
errors reach the caller unchanged; timeout bounds the first item only, a deadline the whole
stream; concurrency slots are held until the stream ends or is closed; the rate limit gates
each attempt."""

from __future__ import annotations

import functools
import gc
import inspect
import threading
import time
from collections.abc import Iterator

import pytest

from opero import AllFailedError, DeadlineExceededError, opero


def flaky(failures: int, items: tuple[int, ...] = (1, 2, 3)) -> tuple[list[int], object]:
    """A generator function failing ``failures`` times before its first item; the list
    counts its runs."""
    runs: list[int] = []

    def gen(x: int) -> Iterator[int]:
        runs.append(x)
        if len(runs) <= failures:
            raise ConnectionError(f"down {len(runs)}")
        yield from (x * i for i in items)

    return runs, gen


def test_a_generator_function_stays_one() -> None:
    def words(n: int, sep: str = " ") -> Iterator[str]:
        """Some words."""
        yield from ["a"] * n

    f = opero(words)
    assert inspect.isgeneratorfunction(f)
    assert f.__name__ == "words" and f.__doc__ == "Some words."
    assert str(inspect.signature(f)) == str(inspect.signature(words))
    assert list(f(2)) == ["a", "a"]
    assert inspect.isgeneratorfunction(opero(cache=False)(words))
    assert inspect.isgeneratorfunction(f.with_options(retries=0))
    assert inspect.isgeneratorfunction(opero(functools.partial(words, 1)))


def test_an_error_before_the_first_item_is_retried() -> None:
    runs, gen = flaky(2)
    f = opero(cache=False, retries=3, min_delay=0)(gen)
    assert list(f(2)) == [2, 4, 6]
    assert len(runs) == 3
    s = f.stats()
    assert (s.calls, s.attempts, s.failures, s.retries) == (1, 3, 2, 2)


def test_retries_exhausted_raise_the_last_error() -> None:
    runs, gen = flaky(10)
    f = opero(cache=False, retries=2, min_delay=0)(gen)
    with pytest.raises(ConnectionError, match="down 3"):
        list(f(1))
    assert len(runs) == 3


def test_an_error_after_the_first_item_reaches_the_caller_unchanged() -> None:
    error = KeyError("midway")
    runs: list[int] = []

    @opero(retries=3, min_delay=0)
    def gen(x: int) -> Iterator[int]:
        runs.append(x)
        yield 1
        raise error

    seen: list[int] = []
    with pytest.raises(KeyError) as info:
        for item in gen(1):
            seen.append(item)
    assert info.value is error
    assert seen == [1] and runs == [1]  # not retried
    assert gen.stats().attempts == 1
    assert not gen.cache_contains(1)  # a failing stream is not stored
    with pytest.raises(KeyError):
        list(gen(1))
    assert runs == [1, 1]


def test_fallback_values_until_the_first_item() -> None:
    tried: list[str] = []

    @opero(cache=False, retries=0, arg_fallback="model")
    def chat(prompt: str, model: list[str] | str = ("a", "b")) -> Iterator[str]:  # type: ignore[assignment]
        tried.append(str(model))
        if model == "a":
            raise ConnectionError("a is down")
        yield f"{prompt} from {model}"

    assert list(chat("hi", model=["a", "b"])) == ["hi from b"]
    assert tried == ["a", "b"]
    tried.clear()

    @opero(cache=False, retries=0, arg_fallback="model")
    def down(prompt: str, model: list[str] | str = ("a",)) -> Iterator[str]:  # type: ignore[assignment]
        raise ConnectionError(str(model))
        yield ""

    with pytest.raises(AllFailedError):
        list(down("x", model=["a", "b"]))


def test_a_rejected_first_item_is_retried() -> None:
    runs, gen = flaky(0, items=(0, 1))
    first = iter([True, False])
    f = opero(cache=False, retries=2, min_delay=0, retry_on_result=lambda _: next(first))(gen)
    assert list(f(5)) == [0, 5]
    assert len(runs) == 2 and f.stats().rejected == 1


def test_arguments_that_do_not_fit_raise_at_once() -> None:
    _runs, gen = flaky(0)
    f = opero(cache=False, retries=3, min_delay=0)(gen)
    with pytest.raises(TypeError):
        list(f(1, 2, 3))
    assert f.stats().attempts == 1


def test_timeout_bounds_the_first_item_only() -> None:
    calls: list[int] = []

    @opero(cache=False, timeout=0.5, retries=1, min_delay=0)
    def slow(x: int) -> Iterator[int]:
        calls.append(x)
        if len(calls) == 1:
            time.sleep(2.0)  # the first attempt is cut at 0.5 s
        yield 0
        for i in range(1, 4):
            time.sleep(0.3)  # 0.9 s after the first item: no timeout any more
            yield i

    started = time.monotonic()
    assert list(slow(1)) == [0, 1, 2, 3]
    assert len(calls) == 2
    assert time.monotonic() - started < 1.9  # did not wait out the first attempt
    s = slow.stats()
    assert (s.attempts, s.failures, s.errors.get("TimeoutError")) == (2, 1, 1)


def test_a_deadline_bounds_the_whole_stream() -> None:
    @opero(cache=False, deadline=0.6, retries=0)
    def slow() -> Iterator[int]:
        for i in range(20):
            yield i
            time.sleep(0.2)

    seen: list[int] = []
    with pytest.raises(DeadlineExceededError):
        for item in slow():
            seen.append(item)
    assert 1 <= len(seen) <= 5
    assert slow.stats().deadlines == 1


def _waits_for_slot(f: object) -> tuple[threading.Thread, threading.Event]:
    got = threading.Event()

    def other() -> None:
        for _ in f(2):  # type: ignore[operator]
            got.set()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    return thread, got


@pytest.mark.parametrize("how", ["close", "end", "drop"])
def test_the_concurrency_slot_is_held_until_the_stream_ends_or_is_closed(how: str) -> None:
    _runs, gen = flaky(0)
    f = opero(cache=False, concurrency=1)(gen)
    first = f(1)
    assert next(first) == 1
    thread, got = _waits_for_slot(f)
    assert not got.wait(0.4)  # the open stream holds the only slot
    if how == "close":
        first.close()
    elif how == "end":
        assert list(first) == [2, 3]
    else:
        del first
        gc.collect()
    assert got.wait(10)
    thread.join(10)


def test_a_failed_attempt_gives_its_slot_back() -> None:
    _runs, gen = flaky(3)
    f = opero(cache=False, concurrency=1, retries=3, min_delay=0)(gen)
    assert list(f(1)) == [1, 2, 3]
    assert list(f(1)) == [1, 2, 3]  # would hang on a slot left taken


def test_the_rate_limit_gates_each_attempt_not_each_item(clock: object) -> None:
    _runs, gen = flaky(1, items=tuple(range(10)))
    f = opero(cache=False, rate_limit=1, retries=2, min_delay=0, jitter=False)(gen)
    assert len(list(f(1))) == 10
    waits = [w for w in clock.sleeps if w > 0]  # type: ignore[attr-defined]
    assert len(waits) == 1 and waits[0] == pytest.approx(1.0, abs=0.05)  # the retry's admission
    assert f.stats().attempts == 2


def test_cache_stream_max_needs_a_generator_function() -> None:
    def plain(x: int) -> int:
        return x

    for decorator in ("opero", "operomap"):
        from opero import operomap

        make = opero if decorator == "opero" else operomap
        with pytest.raises(ValueError, match="cache_stream_max.*generator function"):
            make(cache_stream_max=5)(plain)
    _runs, gen = flaky(0)
    assert list(opero(cache_stream_max=5)(gen)(1)) == [1, 2, 3]


def test_retry_on_result_sees_the_first_item_or_no_items() -> None:
    seen: list[object] = []

    def check(value: object) -> bool:
        seen.append(value)
        return False

    _runs, gen = flaky(0, items=(7, 8))
    assert list(opero(cache=False, retry_on_result=check)(gen)(1)) == [7, 8]
    _runs, empty = flaky(0, items=())
    assert list(opero(cache=False, retry_on_result=check)(empty)(1)) == []
    assert seen == [7, []]
