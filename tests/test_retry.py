"""Retry: the schedule, jitter, server-directed delays, what is retried, cancellation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from opero import opero
from opero.core.retry import Schedule, backoff_delay, jittered, retry_after_of


def schedule(**kw: object) -> Schedule:
    base: dict[str, object] = dict(
        retries=3,
        min_delay=0.1,
        backoff_factor=1.5,
        max_delay=30,
        jitter=False,
    )
    base.update(kw)
    return Schedule(**base)  # type: ignore[arg-type]


def test_backoff_formula() -> None:
    assert [backoff_delay(k, 0.1, 1.5, 30) for k in (1, 2, 3)] == pytest.approx([0.1, 0.15, 0.225])
    assert backoff_delay(50, 1, 2, 7) == 7
    assert backoff_delay(10_000, 1, 10, 5) == 5  # overflow is capped, not raised


def test_jitter_bounds_and_cap() -> None:
    assert jittered(1.0, 30, rand=lambda: 0.0) == pytest.approx(0.75)
    assert jittered(1.0, 30, rand=lambda: 1.0) == pytest.approx(1.25)
    assert jittered(1.0, 30, rand=lambda: 0.5) == pytest.approx(1.0)
    assert jittered(10.0, 11, rand=lambda: 1.0) == 11  # never above max_delay


def test_schedule_delay_prefers_retry_after_capped_and_unjittered() -> None:
    s = schedule(jitter=True, max_delay=5)
    assert s.delay(1, retry_after=2.0, rand=lambda: 1.0) == 2.0
    assert s.delay(1, retry_after=99.0) == 5


def test_exact_delays_requested(clock) -> None:
    calls = []

    @opero(cache=False, retries=3, jitter=False)
    def flaky() -> None:
        calls.append(clock.now)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        flaky()
    assert clock.sleeps == pytest.approx([0.1, 0.15, 0.225])
    assert len(calls) == 4


def test_jittered_delays_within_bounds(clock) -> None:
    @opero(cache=False, retries=6, min_delay=1, backoff_factor=2, max_delay=10)
    def flaky() -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        flaky()
    bases = [1, 2, 4, 8, 10, 10]
    assert len(clock.sleeps) == 6
    for got, base in zip(clock.sleeps, bases, strict=True):
        assert 0.75 * base <= got <= min(10, 1.25 * base)


def test_succeeds_after_failures(clock) -> None:
    outcomes = [ValueError("1"), ValueError("2"), "ok"]

    @opero(cache=False, retries=3, jitter=False)
    def flaky() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert flaky() == "ok"
    assert clock.sleeps == pytest.approx([0.1, 0.15])


def test_last_original_exception_with_notes(clock) -> None:
    n = 0

    @opero(cache=False, retries=2)
    def flaky() -> None:
        nonlocal n
        n += 1
        raise TimeoutError(f"try {n}")

    with pytest.raises(TimeoutError, match="try 3") as info:
        flaky()
    notes = info.value.__notes__
    assert notes == [
        "attempt 1/3 failed earlier: TimeoutError('try 1')",
        "attempt 2/3 failed earlier: TimeoutError('try 2')",
    ]


def test_retries_zero_means_one_attempt(clock) -> None:
    n = 0

    @opero(cache=False, retries=0)
    def f() -> None:
        nonlocal n
        n += 1
        raise ValueError

    with pytest.raises(ValueError):
        f()
    assert n == 1
    assert clock.sleeps == []


def test_retry_on_filters(clock) -> None:
    n = 0

    @opero(cache=False, retries=3, retry_on=ConnectionError)
    def f() -> None:
        nonlocal n
        n += 1
        raise KeyError("not retried")

    with pytest.raises(KeyError) as info:
        f()
    assert n == 1
    assert not getattr(info.value, "__notes__", None)  # passed through unchanged


def test_retry_on_tuple(clock) -> None:
    errors = [ConnectionError(), TimeoutError(), ValueError("stop")]

    @opero(cache=False, retries=5, retry_on=(ConnectionError, TimeoutError))
    def f() -> None:
        raise errors.pop(0)

    with pytest.raises(ValueError, match="stop"):
        f()
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_never_retried_even_if_listed(clock, exc_type: type[BaseException]) -> None:
    n = 0

    @opero(cache=False, retries=3, retry_on=BaseException)
    def f() -> None:
        nonlocal n
        n += 1
        raise exc_type

    with pytest.raises(exc_type):
        f()
    assert n == 1


async def test_cancelled_error_never_retried(clock) -> None:
    n = 0

    @opero(cache=False, retries=3, retry_on=BaseException)
    async def f() -> None:
        nonlocal n
        n += 1
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await f()
    assert n == 1


async def test_cancellation_during_backoff_stops_attempts(monkeypatch) -> None:
    from opero.core.clock import CLOCK

    sleeping = asyncio.Event()

    async def forever(seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(CLOCK, "async_sleep", forever)
    n = 0

    @opero(cache=False, retries=5)
    async def f() -> None:
        nonlocal n
        n += 1
        raise ConnectionError

    task = asyncio.create_task(f())
    await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.01)
    assert n == 1


def test_keyboard_interrupt_during_sync_backoff_stops(monkeypatch) -> None:
    from opero.core.clock import CLOCK

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(CLOCK, "sleep", interrupted)
    n = 0

    @opero(cache=False, retries=5)
    def f() -> None:
        nonlocal n
        n += 1
        raise ConnectionError

    with pytest.raises(KeyboardInterrupt):
        f()
    assert n == 1


async def test_async_delays_and_success(clock) -> None:
    outcomes: list[object] = [ValueError(), ValueError(), 7]

    @opero(cache=False, retries=3, jitter=False, min_delay=1, backoff_factor=2)
    async def f() -> int:
        o = outcomes.pop(0)
        if isinstance(o, Exception):
            raise o
        return o  # type: ignore[return-value]

    assert await f() == 7
    assert clock.sleeps == [1, 2]


class RetryAfterError(Exception):
    def __init__(self, retry_after: object) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


class Response:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class HTTPStatusError(Exception):
    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("429")
        self.response = Response(headers)


def test_retry_after_attribute_and_header_parsing() -> None:
    assert retry_after_of(RetryAfterError(3)) == 3
    assert retry_after_of(RetryAfterError(2.5)) == 2.5
    assert retry_after_of(RetryAfterError("soon")) is None
    assert retry_after_of(RetryAfterError(True)) is None
    assert retry_after_of(HTTPStatusError({"Retry-After": "7"})) == 7
    assert retry_after_of(HTTPStatusError({"retry-after": "4"})) == 4
    assert retry_after_of(HTTPStatusError({"Other": "1"})) is None
    assert retry_after_of(HTTPStatusError({"Retry-After": "garbage"})) is None
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    date = format_datetime(now + timedelta(seconds=42), usegmt=True)
    got = retry_after_of(HTTPStatusError({"Retry-After": date}), now=lambda: now)
    assert got == pytest.approx(42)
    past = format_datetime(now - timedelta(seconds=42), usegmt=True)
    assert retry_after_of(HTTPStatusError({"Retry-After": past}), now=lambda: now) == 0
    assert retry_after_of(ValueError()) is None


def test_retry_after_sets_delay_unjittered_and_capped(clock) -> None:
    errors = [RetryAfterError(2), HTTPStatusError({"Retry-After": "100"}), RetryAfterError(0.5)]

    @opero(cache=False, retries=3, jitter=True, max_delay=10)
    def f() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    assert f() == "ok"
    assert clock.sleeps == [2, 10, 0.5]


def test_largest_retry_after_of_a_round_wins(clock) -> None:
    errors = [RetryAfterError(1), RetryAfterError(3), RetryAfterError(2)]

    @opero(cache=False, retries=1, arg_fallback="model")
    def f(model: list[str] = ["a", "b", "c"]) -> str:
        if errors:
            raise errors.pop(0)
        return model

    assert f() == "a"
    assert clock.sleeps == [3]
