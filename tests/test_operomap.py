"""@operomap in every mode, global cache and rate limit, failures, process faults."""

from __future__ import annotations

import asyncio
import inspect
import threading
import traceback
from typing import Any

import pytest

from opero import OperoError, OperomapError, RemoteError, WorkerCrashedError, operomap
from opero.core.clock import CLOCK

from . import map_helpers as h
from .recording import record_admissions

SYNC_MODES = ["thread", "process", "async", "process_async", "tmap", "pmap", "amap", "apmap"]


def mapped(fn: Any, **options: Any) -> Any:
    options.setdefault("progress", False)
    options.setdefault("workers", 2)
    return operomap(**options)(fn)


@pytest.mark.parametrize("mode", SYNC_MODES)
@pytest.mark.parametrize("ordered", [True, False])
def test_sync_function_every_mode(mode: str, ordered: bool) -> None:
    f = mapped(h.square, mode=mode, ordered=ordered, cache=False)
    assert not inspect.iscoroutinefunction(f)
    got = f(range(40), add=1)
    expected = [x * x + 1 for x in range(40)]
    assert got == expected if ordered else sorted(got) == expected


@pytest.mark.parametrize("mode", SYNC_MODES)
@pytest.mark.parametrize("ordered", [True, False])
async def test_async_function_every_mode(mode: str, ordered: bool) -> None:
    f = mapped(h.asquare, mode=mode, ordered=ordered, cache=False)
    assert inspect.iscoroutinefunction(f)
    got = await f(range(30), 2)
    expected = [x * x + 2 for x in range(30)]
    assert got == expected if ordered else sorted(got) == expected


def test_extra_args_and_kwargs_shared() -> None:
    seen: list[tuple[int, str, str]] = []

    def work(item: int, prefix: str, *, suffix: str) -> str:
        seen.append((item, prefix, suffix))
        return f"{prefix}{item}{suffix}"

    f = mapped(work, cache=False)
    assert f([1, 2], "<", suffix=">") == ["<1>", "<2>"]
    assert sorted(seen) == [(1, "<", ">"), (2, "<", ">")]


def test_signature_and_metadata() -> None:
    f = mapped(h.square)
    assert f.__name__ == "square"
    assert list(inspect.signature(f).parameters) == ["items", "add"]
    assert callable(f.iter)
    f.cache_clear()


def test_iter_streams_sync() -> None:
    f = mapped(h.square, cache=False, ordered=True)
    it = f.iter(range(10))
    assert next(it) == 0
    assert list(it) == [x * x for x in range(1, 10)]


async def test_iter_streams_async() -> None:
    f = mapped(h.asquare, mode="async", cache=False)
    assert [x async for x in f.iter(range(5))] == [0, 1, 4, 9, 16]


def test_iter_raises_at_end_after_yielding_successes() -> None:
    f = mapped(h.fail_on_three, cache=False, retries=0)
    got: list[int] = []
    with pytest.raises(OperomapError) as info:
        for value in f.iter(range(6)):
            got.append(value)
    assert got == [0, 1, 2, 4, 5]
    assert [str(e) for e in info.value.exceptions] == ["three"]


def test_iter_with_return_exceptions_yields_failures() -> None:
    f = mapped(h.fail_on_three, cache=False, retries=0, return_exceptions=True)
    got = list(f.iter(range(5)))
    assert got[:3] == [0, 1, 2] and isinstance(got[3], ValueError) and got[4] == 4


def test_iter_closed_early_stops_cleanly() -> None:
    f = mapped(h.square, mode="process", cache=False)
    it = f.iter(range(10_000))
    assert next(it) == 0
    it.close()  # must not hang; workers are stopped


# ----- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "process", "async"])
def test_operomap_error_keeps_every_result(mode: str) -> None:
    f = mapped(h.fail_on_three, mode=mode, cache=False, retries=0)
    with pytest.raises(OperomapError) as info:
        f(range(6))
    err = info.value
    assert isinstance(err, OperoError)
    assert isinstance(err, ExceptionGroup)
    assert err.results[:3] == [0, 1, 2] and err.results[4:] == [4, 5]
    assert isinstance(err.results[3], ValueError)
    assert err.exceptions[0] is err.results[3]
    assert "operomap item 3" in err.exceptions[0].__notes__
    assert "1 of 6 items failed" in str(err)


def test_return_exceptions() -> None:
    f = mapped(h.fail_on_three, cache=False, retries=0, return_exceptions=True)
    out = f(range(5))
    assert out[:3] == [0, 1, 2] and isinstance(out[3], ValueError) and out[4] == 4


def test_failed_items_are_retried_and_fall_back(clock) -> None:
    attempts: dict[tuple[int, str], int] = {}
    lock = threading.Lock()

    def work(item: int, model: Any = ("a", "b")) -> str:
        with lock:
            attempts[(item, model)] = attempts.get((item, model), 0) + 1
        if model == "a" and item % 2:
            raise ConnectionError(model)
        return f"{item}{model}"

    f = mapped(work, cache=False, retries=1, arg_fallback="model", mode="thread")
    assert f(range(4)) == ["0a", "1b", "2a", "3b"]
    assert attempts == {
        (0, "a"): 1,
        (1, "a"): 1,
        (1, "b"): 1,
        (2, "a"): 1,
        (3, "a"): 1,
        (3, "b"): 1,
    }


def test_process_exception_round_trip_and_remote_traceback() -> None:
    f = mapped(h.fail_on_three, mode="process", cache=False, retries=0)
    with pytest.raises(OperomapError) as info:
        f(range(5))
    exc = info.value.exceptions[0]
    assert type(exc) is ValueError
    # the worker's traceback: as the __cause__ text, or as real frames where tblib's pickling
    # support is installed (importing dask.distributed installs it)
    text = "".join(traceback.format_exception(exc))
    assert "fail_on_three" in text


def test_process_exception_that_cannot_pickle_arrives_as_its_own_class(clock) -> None:
    f = mapped(h.unpicklable_error, mode="process", cache=False, retries=1)
    with pytest.raises(OperomapError) as info:
        f([1])
    exc = info.value.exceptions[0]
    assert type(exc) is h.NotRoundTrippable
    assert exc.args == ("cannot come back",) and exc.code == 42 and exc.retry_after == 2.5
    assert not hasattr(exc, "connection")  # the lock could not cross: left out
    assert "unpicklable_error" in "".join(traceback.format_exception(exc))
    assert clock.sleeps == [2.5]  # its retry_after drove the backoff


def test_sdk_style_error_crosses_with_a_response_stand_in(clock) -> None:
    f = mapped(h.rate_limited, mode="process", cache=False, retries=1)
    with pytest.raises(OperomapError) as info:
        f([7])
    exc = info.value.exceptions[0]
    assert type(exc) is h.StatusError and str(exc) == "slow down 7"
    assert exc.status_code == 429
    assert exc.response.status_code == 429 and exc.response.headers == {"Retry-After": "3"}
    assert clock.sleeps == [3.0]  # Retry-After read from the stand-in's headers


def test_process_exception_of_a_class_the_caller_cannot_import_is_a_remote_error(clock) -> None:
    f = mapped(h.local_class_error, mode="process", cache=False, retries=0)
    with pytest.raises(OperomapError) as info:
        f([1])
    exc = info.value.exceptions[0]
    assert isinstance(exc, RemoteError) and isinstance(exc, OperoError)
    assert "Local" in exc.type_name
    assert exc.message == "from a class the caller cannot import"
    assert "local_class_error" in exc.remote_traceback


def test_process_unpicklable_result_is_a_clear_error() -> None:
    f = mapped(h.returns_lambda, mode="process", cache=False, retries=0)
    with pytest.raises(OperomapError) as info:
        f([1, 2])
    assert all(isinstance(e, RemoteError) for e in info.value.exceptions)
    assert "cannot be sent back" in str(info.value.exceptions[0])


def test_worker_killed_fails_only_its_item() -> None:
    f = mapped(h.die_on_five, mode="process", cache=False, retries=0)
    with pytest.raises(OperomapError) as info:
        f(range(40))
    results = info.value.results
    assert [r for i, r in enumerate(results) if i != 5] == [i for i in range(40) if i != 5]
    assert isinstance(results[5], WorkerCrashedError)
    assert isinstance(results[5], OperoError)
    assert "exit code 7" in str(results[5])
    assert len(info.value.exceptions) == 1


def test_closure_and_lambda_refused_in_process_modes() -> None:
    def local(x: int) -> int:
        return x

    for mode in ("process", "process_async"):
        with pytest.raises(TypeError, match="Define it at module level"):
            operomap(mode=mode)(local)
        with pytest.raises(TypeError, match="lambda"):
            operomap(mode=mode)(lambda x: x)
    assert mapped(lambda x: x + 1, cache=False)([1]) == [2]  # threads take closures


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"mode": "cluster"}, "mode must be one of"),
        ({"workers": 0}, "workers must be an int >= 1"),
        ({"ordered": "yes"}, "ordered must be True or False"),
        ({"retries": -1}, "retries"),
    ],
)
def test_invalid_map_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        operomap(**options)(h.square)


# ----- global cache, rate limit, waiting in the caller ---------------------------------------


def test_process_second_call_served_from_caller_cache(monkeypatch) -> None:
    import opero.maps.processes as dispatch

    started: list[int] = []
    real = dispatch.ProcessWorker

    def counting(*a: Any, **k: Any) -> Any:
        started.append(1)
        return real(*a, **k)

    monkeypatch.setattr(dispatch, "ProcessWorker", counting)
    f = mapped(h.pid_of, mode="process")
    first = f(range(20))
    assert len(started) == 2
    assert f(range(20)) == first  # identical pids: values came from the caller's cache
    assert len(started) == 2  # no pool started


def test_duplicate_items_computed_once() -> None:
    calls: list[int] = []
    release = threading.Event()

    def work(x: int) -> int:
        calls.append(x)
        release.wait(5)
        return x

    f = mapped(work, workers=4)
    threading.Timer(0.2, release.set).start()
    assert f([7, 7, 7, 7, 8]) == [7, 7, 7, 7, 8]
    assert sorted(calls) == [7, 8]


@pytest.mark.parametrize("mode", ["thread", "process", "async"])
def test_rate_limit_is_global_not_per_worker(clock, mode: str) -> None:
    f = mapped(h.square, mode=mode, workers=8, cache=False, rate_limit=10)
    booked = record_admissions(f)
    assert f(range(30)) == [x * x for x in range(30)]
    assert len(booked) == 30
    gaps = [round(b - a, 9) for a, b in zip(booked, booked[1:])]
    assert gaps == [0.1] * 29  # one limiter in the caller, 10/s in total


def test_rate_limit_real_time_across_process_workers() -> None:
    """Integration, wide margins: 2 process workers share 20 attempts/s."""
    import time

    f = mapped(h.square, mode="process", workers=2, cache=False, rate_limit=20)
    t0 = time.monotonic()
    f(range(21))
    assert time.monotonic() - t0 >= 20 / 20 * 0.9


def test_backoff_waits_in_caller_not_on_a_worker(monkeypatch) -> None:
    order: list[int] = []
    failed_once: set[int] = set()
    lock = threading.Lock()

    def work(x: int) -> int:
        with lock:
            order.append(x)
            if x == 0 and x not in failed_once:
                failed_once.add(x)
                raise ConnectionError
        return x

    seen_during_backoff: list[list[int]] = []

    async def backoff(seconds: float) -> None:
        # the single worker must be free to run items 1 and 2 while item 0 waits here
        for _ in range(2000):
            if 1 in order and 2 in order:
                break
            await asyncio.sleep(0.001)
        seen_during_backoff.append(list(order))

    monkeypatch.setattr(CLOCK, "async_sleep", backoff)
    f = mapped(work, workers=1, cache=False, retries=1, min_delay=5)
    assert f([0, 1, 2]) == [0, 1, 2]
    assert seen_during_backoff and {1, 2} <= set(seen_during_backoff[0])


# ----- lazy input, bounded in flight ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["thread", "process", "async"])
def test_lazy_input_bounded_in_flight(mode: str) -> None:
    consumed = 0

    def gen() -> Any:
        nonlocal consumed
        for i in range(3000):
            consumed += 1
            yield i

    # unordered: nothing is held for order, so what is read and not yet returned is what is
    # in flight (an ordered map holds results past a slow item on top: test_ordered_window)
    f = mapped(h.square, mode=mode, workers=2, cache=False, ordered=False)
    bound = f.__opero_map__.bound
    worst = 0
    seen = []
    for n, value in enumerate(f.iter(gen()), start=1):
        seen.append(value)
        worst = max(worst, consumed - n)
    assert consumed == 3000
    assert sorted(seen) == [i * i for i in range(3000)]
    # the driver holds at most `bound` items; the hand-over to this thread adds at most
    # three chunks (queued, being put, being consumed), each at most `bound`
    assert worst <= 4 * bound


@pytest.mark.parametrize("mode", ["thread", "process", "async"])
async def test_lazy_input_bounded_in_flight_async_iter(mode: str) -> None:
    consumed = 0

    def gen() -> Any:
        nonlocal consumed
        for i in range(2000):
            consumed += 1
            yield i

    # unordered: nothing is held for order, so what is read and not yet returned is what is
    # in flight (an ordered map holds results past a slow item on top: test_ordered_window)
    f = mapped(h.asquare, mode=mode, workers=2, cache=False, ordered=False)
    bound = f.__opero_map__.bound
    worst = 0
    n = 0
    seen = []
    async for value in f.iter(gen()):
        n += 1
        seen.append(value)
        worst = max(worst, consumed - n)
    assert consumed == 2000
    assert sorted(seen) == [i * i for i in range(2000)]
    assert worst <= bound


def test_sync_map_called_inside_running_loop() -> None:
    f = mapped(h.square, cache=False)

    async def main() -> list[int]:
        return f([1, 2, 3])

    assert asyncio.run(main()) == [1, 4, 9]


def test_empty_input() -> None:
    assert mapped(h.square, mode="process")([]) == []
    assert list(mapped(h.square).iter([])) == []


def test_decorated_module_level_function_in_process_mode() -> None:
    assert h.decorated_square(range(5)) == [0, 1, 4, 9, 16]


def test_worker_that_cannot_load_the_function_explains_why() -> None:
    f = mapped(h.ghost, mode="process", cache=False, retries=0)
    with pytest.raises(OperomapError) as info:
        f(range(3))
    assert all("cannot load" in str(e) for e in info.value.exceptions)


def test_unpicklable_argument_fails_only_its_item() -> None:
    f = mapped(h.identity, mode="process", cache=False, retries=0)
    lock = threading.Lock()
    with pytest.raises(OperomapError) as info:
        f([1, lock, 3])
    results = info.value.results
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], Exception) and "pickle" in str(results[1]).lower()


def test_process_mode_with_cache_duplicates_and_failures(clock) -> None:
    f = mapped(h.fail_on_three, mode="process", retries=1)
    with pytest.raises(OperomapError) as info:
        f([1, 1, 3, 2, 2, 3])
    results = info.value.results
    assert [results[i] for i in (0, 1, 3, 4)] == [1, 1, 2, 2]
    assert isinstance(results[2], ValueError) and isinstance(results[5], ValueError)
    assert f([1, 2]) == [1, 2]  # from the cache
