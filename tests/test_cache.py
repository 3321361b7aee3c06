"""The cache (memory and disk backends), keys, TTL, single-flight, cache_clear."""

from __future__ import annotations

import asyncio
import gc
import os
import stat
import subprocess
import sys
import textwrap
import threading
import weakref
from pathlib import Path

import pytest

from opero import opero


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.lock = threading.Lock()

    def tick(self) -> int:
        with self.lock:
            self.n += 1
            return self.n


def test_memory_hit_returns_stored_object() -> None:
    c = Counter()

    @opero()
    def f(x: int) -> list[int]:
        c.tick()
        return [x]

    first = f(1)
    assert f(1) is first  # the stored object itself, as lru_cache
    first.append(2)
    assert f(1) == [1, 2]
    assert c.n == 1


def test_keys_follow_lru_cache_positional_vs_keyword() -> None:
    c = Counter()

    @opero()
    def f(x: int, y: int = 0) -> int:
        c.tick()
        return x + y

    f(1)
    f(1)
    f(x=1)
    f(x=1)
    f(1, y=0)
    assert c.n == 3


def test_unhashable_arguments_keyed_stably() -> None:
    c = Counter()

    @opero()
    def f(items: list[int], opts: dict[str, int]) -> int:
        c.tick()
        return sum(items) + sum(opts.values())

    assert f([1, 2], {"a": 1, "b": 2}) == 6
    assert f([1, 2], {"b": 2, "a": 1}) == 6  # dict order does not matter
    assert c.n == 1
    f([2, 1], {"a": 1, "b": 2})
    assert c.n == 2


def test_unkeyable_argument_runs_uncached() -> None:
    c = Counter()

    class Opaque:
        __hash__ = None  # type: ignore[assignment]

    @opero()
    def f(o: object) -> int:
        return c.tick()

    o = Opaque()
    assert f(o) == 1
    assert f(o) == 2


def test_exceptions_never_cached(clock) -> None:
    outcomes: list[object] = [ValueError("boom"), 5]

    @opero(retries=0)
    def f() -> int:
        o = outcomes.pop(0)
        if isinstance(o, Exception):
            raise o
        return o  # type: ignore[return-value]

    with pytest.raises(ValueError):
        f()
    assert f() == 5
    assert f() == 5


def test_ttl_expiry(clock) -> None:
    c = Counter()

    @opero(cache_ttl=10)
    def f() -> int:
        return c.tick()

    assert f() == 1
    clock.advance(9.9)
    assert f() == 1
    clock.advance(0.2)
    assert f() == 2
    assert f() == 2


def test_ttl_none_never_expires(clock) -> None:
    c = Counter()

    @opero(cache_ttl=None)
    def f() -> int:
        return c.tick()

    f()
    clock.advance(10**9)
    assert f() == 1


def test_maxsize_evicts_least_recently_used() -> None:
    c = Counter()

    @opero(cache_maxsize=2)
    def f(x: int) -> int:
        c.tick()
        return x

    f(1)
    f(2)
    f(1)  # 1 is now most recently used
    f(3)  # evicts 2
    assert c.n == 3
    f(1)
    assert c.n == 3
    f(2)
    assert c.n == 4


def test_cache_key_callable_and_none_means_uncached() -> None:
    c = Counter()

    def key(prompt: str, temperature: float = 0.0, *, request_id: str = "") -> object:
        return None if temperature > 0 else prompt

    @opero(cache_key=key)
    def ask(prompt: str, temperature: float = 0.0, *, request_id: str = "") -> int:
        return c.tick()

    assert ask("a", request_id="1") == 1
    assert ask("a", request_id="2") == 1  # request_id is not part of the key
    assert ask("a", 0.5) == 2
    assert ask("a", 0.5) == 3  # not cached


def test_cache_clear() -> None:
    c = Counter()

    @opero()
    def f(x: int) -> int:
        return c.tick()

    f(1)
    f.cache_clear()
    assert f(1) == 2

    @opero(cache=False)
    def g() -> int:
        return c.tick()

    g.cache_clear()  # exists, does nothing


def test_cache_false_always_calls() -> None:
    c = Counter()

    @opero(cache=False)
    def f() -> int:
        return c.tick()

    assert [f(), f()] == [1, 2]


async def test_async_caches_awaited_value() -> None:
    c = Counter()

    @opero()
    async def f(x: int) -> int:
        await asyncio.sleep(0)
        return x * 10 + c.tick()

    assert await f(1) == 11
    assert await f(1) == 11
    assert c.n == 1


def test_asyncio_run_twice_on_same_function() -> None:
    @opero()
    async def f(x: int) -> int:
        await asyncio.sleep(0)
        return x

    assert asyncio.run(f(1)) == 1
    assert asyncio.run(f(1)) == 1
    assert asyncio.run(f(2)) == 2


# ----- single-flight ---------------------------------------------------------------------


def wait_for_waiters(func: object, n: int) -> None:
    """Block until ``n`` callers wait on ``func``'s flights (polls; no timing assertion)."""
    import time

    flights = func.__opero_cache__.flights  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while flights.waiting() < n:
        assert time.monotonic() < deadline, f"only {flights.waiting()} of {n} callers waiting"
        time.sleep(0.001)


def test_single_flight_threads() -> None:
    c = Counter()
    entered = threading.Event()
    release = threading.Event()

    @opero()
    def slow(x: int) -> int:
        c.tick()
        entered.set()
        release.wait(10)
        return x * 2

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(16)]
    for t in threads:
        t.start()
    assert entered.wait(10)
    wait_for_waiters(slow, 15)
    release.set()
    for t in threads:
        t.join(10)
    assert results == [42] * 16
    assert c.n == 1


def test_single_flight_threads_share_the_error(clock) -> None:
    c = Counter()
    gate = threading.Barrier(8, timeout=10)
    release = threading.Event()

    @opero(retries=0)
    def slow() -> int:
        c.tick()
        release.wait(10)
        raise ValueError("shared")

    errors: list[BaseException] = []

    def run() -> None:
        gate.wait()
        try:
            slow()
        except ValueError as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    wait_for_waiters(slow, 7)
    release.set()
    for t in threads:
        t.join(10)
    assert len(errors) == 8
    assert c.n == 1
    assert len({id(e) for e in errors}) == 1  # the leader's error, shared


async def test_single_flight_asyncio() -> None:
    c = Counter()
    release = asyncio.Event()

    @opero()
    async def slow(x: int) -> int:
        c.tick()
        await release.wait()
        return x + 1

    tasks = [asyncio.create_task(slow(1)) for _ in range(50)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*tasks) == [2] * 50
    assert c.n == 1


async def test_single_flight_asyncio_shares_error_and_survives_cancelled_leader() -> None:
    c = Counter()
    release = asyncio.Event()

    @opero(retries=0)
    async def slow() -> int:
        n = c.tick()
        await release.wait()
        if n == 2:
            return 99
        raise ValueError("unreachable")

    leader = asyncio.create_task(slow())
    await asyncio.sleep(0.01)
    waiters = [asyncio.create_task(slow()) for _ in range(5)]
    await asyncio.sleep(0.01)
    leader.cancel()  # a waiter takes over: nobody else sees this CancelledError
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(*waiters) == [99] * 5
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert c.n == 2


async def test_single_flight_asyncio_error_shared() -> None:
    c = Counter()
    release = asyncio.Event()

    @opero(retries=0)
    async def slow() -> int:
        c.tick()
        await release.wait()
        raise ValueError("shared")

    tasks = [asyncio.create_task(slow()) for _ in range(10)]
    await asyncio.sleep(0.01)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert c.n == 1


def test_single_flight_across_event_loops_in_threads() -> None:
    c = Counter()
    release = threading.Event()

    @opero()
    async def slow() -> int:
        c.tick()
        await asyncio.to_thread(release.wait, 10)
        return 5

    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(asyncio.run(slow()))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    wait_for_waiters(slow, 3)
    release.set()
    for t in threads:
        t.join(10)
    assert results == [5] * 4
    assert c.n == 1


# ----- methods -----------------------------------------------------------------------------


class Service:
    calls = 0

    def __init__(self, base: int) -> None:
        self.base = base

    @opero()
    def compute(self, x: int) -> int:
        Service.calls += 1
        return self.base + x

    @classmethod
    @opero()
    def make(cls, x: int) -> int:
        return x * 3

    @staticmethod
    @opero()
    def pure(x: int) -> int:
        return x * 4


def test_methods_classmethod_staticmethod() -> None:
    Service.calls = 0
    a, b = Service(10), Service(100)
    assert a.compute(1) == 11
    assert b.compute(1) == 101
    assert a.compute(1) == 11
    assert Service.calls == 2
    assert Service.make(2) == 6
    assert Service.pure(2) == 8
    assert a.pure(3) == 12


def test_self_keyed_by_identity_and_not_kept_alive() -> None:
    class Eq:
        def __init__(self) -> None:
            self.n = 0

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Eq)

        def __hash__(self) -> int:
            return 1

        @opero()
        def value(self) -> int:
            self.n += 1
            return id(self)

    a, b = Eq(), Eq()
    assert a.value() == id(a)
    assert b.value() == id(b)  # equal instances do not share entries
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None  # the cache kept no instance alive
    store = Eq.value.__opero_cache__.store  # type: ignore[attr-defined]
    assert len(store.data) == 1


def test_decorator_above_classmethod_is_refused() -> None:
    with pytest.raises(TypeError, match="below @classmethod"):

        class Bad:
            @opero()  # type: ignore[arg-type]
            @classmethod
            def f(cls) -> None: ...


# ----- disk backend ------------------------------------------------------------------------


def test_disk_cache_directory_is_private(tmp_path: Path) -> None:
    d = tmp_path / "c"

    @opero(cache_backend="disk", cache_dir=d)
    def f(x: int) -> int:
        return x

    f(1)
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700


def test_disk_cache_survives_another_process(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from opero import opero

        calls = 0

        @opero(cache_backend="disk", cache_dir=sys.argv[1], cache_namespace="t")
        def add(a, b, opts=None):
            global calls
            calls += 1
            return {"sum": a + b, "opts": opts}

        r = add(1, 2, opts={"y": [1, 2], "x": None})
        print(calls, r["sum"])
        """
    )
    path = tmp_path / "job.py"
    path.write_text(script)
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    first = subprocess.run(
        [sys.executable, path, cache],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    second = subprocess.run(
        [sys.executable, path, cache],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert first.stdout.split() == ["1", "3"]
    assert second.stdout.split() == ["0", "3"]  # computed by the first process


DISK_CALLS = Counter()  # a global, not a closure value: closures are part of disk keys


def reset_disk_calls() -> Counter:
    DISK_CALLS.n = 0
    return DISK_CALLS


def test_disk_keys_apply_defaults_and_namespace(tmp_path: Path) -> None:
    c = DISK_CALLS
    c.n = 0

    def make(ns: str):  # type: ignore[no-untyped-def]
        @opero(cache_backend="disk", cache_dir=tmp_path, cache_namespace=ns)
        def f(x: int, y: int = 0) -> int:
            DISK_CALLS.tick()
            return x + y

        return f

    f = make("one")
    f(1)
    f(x=1)
    f(1, 0)
    assert c.n == 1  # bound arguments with defaults: one key
    make("two")(1)
    assert c.n == 2  # another namespace, another key
    make("one")(1)
    assert c.n == 2


def test_disk_cache_clear_removes_only_this_function(tmp_path: Path) -> None:
    reset_disk_calls()

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def f(x: int) -> int:
        return DISK_CALLS.tick()

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def g(x: int) -> int:
        return DISK_CALLS.tick()

    f(1)
    g(1)
    f.cache_clear()
    assert f(1) == 3
    assert g(1) == 2


def test_disk_ttl(tmp_path: Path, monkeypatch) -> None:
    import time as _time

    reset_disk_calls()

    @opero(cache_backend="disk", cache_dir=tmp_path, cache_ttl=5)
    def f() -> int:
        return DISK_CALLS.tick()

    f()
    assert f() == 1
    real = _time.time
    monkeypatch.setattr(_time, "time", lambda: real() + 6)  # diskcache expires on wall time
    assert f() == 2


def test_disk_unkeyable_argument_runs_uncached(tmp_path: Path) -> None:
    reset_disk_calls()

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def f(o: object) -> int:
        return DISK_CALLS.tick()

    o = object()
    assert f(o) == 1
    assert f(o) == 2


def test_disk_unpicklable_result_runs_uncached(tmp_path: Path) -> None:
    reset_disk_calls()

    @opero(cache_backend="disk", cache_dir=tmp_path)
    def f() -> object:
        DISK_CALLS.tick()
        return lambda: None

    f()
    f()
    assert DISK_CALLS.n == 2


async def test_disk_async(tmp_path: Path) -> None:
    reset_disk_calls()

    @opero(cache_backend="disk", cache_dir=tmp_path)
    async def f(x: int) -> int:
        return x + DISK_CALLS.tick()

    assert await f(1) == 2
    assert await f(1) == 2
