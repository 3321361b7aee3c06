"""Module-level functions for process-mode tests (workers load them by name)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

from opero import operomap


def square(x: int, add: int = 0) -> int:
    return x * x + add


async def asquare(x: int, add: int = 0) -> int:
    await asyncio.sleep(0)
    return x * x + add


def pid_of(x: int) -> int:
    return os.getpid()


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


def die_on_five(x: int) -> int:
    if x == 5:
        os._exit(7)
    return x


class NotRoundTrippable(Exception):
    """Cannot cross a process boundary, whatever pickling support is installed."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = 2.5
        self.connection = threading.Lock()  # like a live HTTP response: not picklable


def unpicklable_error(x: int) -> int:
    raise NotRoundTrippable("cannot come back", 42)


class FakeResponse:
    """An HTTP response as SDKs hold it: status, headers, and live parts that do not pickle."""

    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code = status_code
        self.headers = headers
        self.stream = threading.Lock()


class StatusError(Exception):
    """Like an SDK status error: keyword-only arguments, so pickle cannot rebuild it."""

    def __init__(self, message: str, *, response: FakeResponse) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code


def rate_limited(x: int) -> int:
    raise StatusError(f"slow down {x}", response=FakeResponse(429, {"Retry-After": "3"}))


def local_class_error(x: int) -> int:
    class Local(Exception):
        pass

    exc = Local("from a class the caller cannot import")
    exc.lock = threading.Lock()  # type: ignore[attr-defined]
    raise exc


def returns_lambda(x: int) -> object:
    return lambda: x


def sleepy(x: float) -> float:
    time.sleep(x)
    return x


@operomap(mode="process", workers=2, cache=False, retries=0, progress=False)
def decorated_square(x: int) -> int:
    return x * x


def hang_on_two(x: int) -> int:
    if x == 2:
        time.sleep(60)
    return x


def slow_square(x: int) -> int:
    time.sleep(0.1)
    return x * x


def counted_double(x: int, counter_url: str) -> int:
    import redis

    redis.Redis.from_url(counter_url).incr("computations")
    return x * 2


def ghost(x: int) -> int:
    return x


ghost.__qualname__ = "no_such_function"  # a worker cannot load it by name


def identity(x: object) -> object:
    return x


def total(items: list[int]) -> int:
    return sum(items)


async def afail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x


async def aslow(x: float) -> float:
    import asyncio

    await asyncio.sleep(x)
    return x


def raise_base_exception(pair: tuple[int, str]) -> int:
    """Raises SystemExit or KeyboardInterrupt for item 3 (a process-mode target)."""
    x, kind = pair
    if x == 3:
        raise {"exit": SystemExit, "kbd": KeyboardInterrupt}[kind]("stop")
    return x


class Scaler:
    """A picklable object whose bound method and __call__ need ``self`` in the worker."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, x: int) -> int:
        return x * self.factor

    def __call__(self, x: int) -> int:
        return x + self.factor


def add(a: int, b: int) -> int:
    return a + b


def sleep_then_return(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def async_identity(x: object) -> object:
    await asyncio.sleep(0)
    return x


def started_at(x: int) -> float:
    """Returns when this attempt started; the first two items take a second."""
    start = time.time()
    if x < 2:
        time.sleep(1.0)
    return start


def half_second(x: int) -> float:
    """Sleeps half a second; returns when it finished."""
    time.sleep(0.5)
    return time.time()


def nested_sum(n: int) -> int:
    """Runs a process map of its own inside a process worker."""
    inner = operomap(mode="process", workers=2, progress=False, cache=False)(square)
    return sum(inner(range(n)))


def logged_run(pair: tuple[str, int, int, int]) -> object:
    """Append the item to a log file (one line per run), then: die (os._exit) on the item
    ``crash`` unless the log already shows it ran before ``crash_times`` times; return the
    item, or ``big`` characters of it when ``big`` > 0."""
    log, item, crash, big = pair
    with open(log, "a") as out:
        out.write(f"{item}\n")
    if item == crash:
        with open(log) as seen:
            runs = sum(1 for line in seen if line.strip() == str(item))
        if runs <= 1:
            os._exit(9)
    return "x" * big if big else item


async def alogged_run(pair: tuple[str, int, int, int]) -> object:
    import asyncio

    await asyncio.sleep(0.001 * (pair[1] % 3))
    return logged_run(pair)


def span(x: int) -> tuple[float, float]:
    """Sleeps 0.15 s; returns when it started and ended (to count attempts in flight)."""
    start = time.time()
    time.sleep(0.15)
    return start, time.time()
