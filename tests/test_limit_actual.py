"""``Limit(cost=estimate, actual=fn)``: after a successful attempt the limit's schedule moves
by what the attempt really used minus the estimate; a failed attempt keeps its estimate; an
``actual`` that fails never fails the call (one RuntimeWarning)."""

from __future__ import annotations

import warnings

import pytest

from opero import Limit, opero
from opero.limits.rate import RateLimiter


def starts_of(clock, limit, answers, **options):  # type: ignore[no-untyped-def]
    """Call a function under ``limit`` once per answer; the times its attempts started."""
    starts: list[float] = []
    t0 = clock.now

    @opero(cache=False, rate_limit=limit, **options)
    def f(answer: object) -> object:
        starts.append(round(clock.now - t0, 9))
        return answer

    for answer in answers:
        assert f(answer) == answer
    return starts


def test_refund_moves_later_admissions_earlier(clock) -> None:
    """10 units/s, each call estimated at 5 (0.5 s) but really using 1 (0.1 s)."""
    limit = Limit(10, cost=lambda answer: 5, actual=lambda answer: answer)
    assert starts_of(clock, limit, [1, 1, 1]) == [0.0, 0.1, 0.2]


def test_without_actual_the_estimate_holds(clock) -> None:
    limit = Limit(10, cost=lambda answer: 5)
    assert starts_of(clock, limit, [1, 1, 1]) == [0.0, 0.5, 1.0]


def test_debit_moves_later_admissions_later(clock) -> None:
    limit = Limit(10, cost=lambda answer: 5, actual=lambda answer: answer)
    assert starts_of(clock, limit, [20, 1, 1]) == [0.0, 2.0, 2.1]


def test_refund_never_moves_the_schedule_before_now() -> None:
    lim = RateLimiter([Limit(10, cost=len, actual=lambda r: 0)])
    assert lim.reserve(0.0, [5]) == 0.0
    assert lim.reserve(0.0, [5]) == 0.5  # the schedule now ends at 1.0

    from opero.core.clock import CLOCK

    real = CLOCK.monotonic
    CLOCK.monotonic = lambda: 0.7  # type: ignore[method-assign]
    try:
        lim.heard(True, "x", [5])  # a refund of 0.5 s would end it at 0.5 < now
    finally:
        CLOCK.monotonic = real  # type: ignore[method-assign]
    assert lim.schedule_end == [pytest.approx(0.7)]
    lim.heard(False, ValueError(), [5])  # a failed attempt: nothing moves
    assert lim.schedule_end == [pytest.approx(0.7)]


def test_failed_attempt_keeps_its_estimate(clock) -> None:
    calls = 0
    starts: list[float] = []

    @opero(
        cache=False,
        retries=1,
        min_delay=0.0,
        max_delay=0.0,
        rate_limit=Limit(10, cost=lambda: 5, actual=lambda r: 1),
    )
    def f() -> int:
        nonlocal calls
        calls += 1
        starts.append(clock.now)
        if calls == 1:
            raise ConnectionError("once")
        return 1

    t0 = clock.now
    assert f() == 1
    assert f() == 1
    # the failure keeps 0.5 s; the success refunds 0.4 s
    assert [round(t - t0, 9) for t in starts] == [0.0, 0.5, 0.6]


@pytest.mark.parametrize(
    "actual",
    [lambda r: 1 / 0, lambda r: "12", lambda r: -3, lambda r: float("nan"), lambda r: None],
)
def test_failing_actual_never_fails_the_call(clock, actual) -> None:  # type: ignore[no-untyped-def]
    limit = Limit(10, cost=lambda answer: 5, actual=actual)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert starts_of(clock, limit, [1, 2, 3]) == [0.0, 0.5, 1.0]  # the estimate stands
    runtime = [w for w in seen if issubclass(w.category, RuntimeWarning)]
    assert len(runtime) == 1 and "actual" in str(runtime[0].message)


def test_actual_on_the_token_limit_of_two(clock) -> None:
    """Requests 100/s and tokens 100/s estimated at 50 a call: a call that really used 10
    tokens gives 0.4 s back to the token limit only."""
    limits = ["100/s", Limit(100, cost=lambda answer: 50, actual=lambda answer: answer)]
    assert starts_of(clock, limits, [10, 10, 10]) == [0.0, 0.1, 0.2]


async def test_actual_heard_on_async_paths(clock) -> None:
    starts: list[float] = []

    @opero(cache=False, rate_limit=Limit(10, cost=lambda n: 5, actual=lambda r: r))
    async def f(n: int) -> int:
        starts.append(clock.now)
        return n

    t0 = clock.now
    for n in [1, 1, 1]:
        assert await f(n) == n
    assert [round(t - t0, 9) for t in starts] == [0.0, 0.1, 0.2]
