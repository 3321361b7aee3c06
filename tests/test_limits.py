"""Rate limits as APIs publish them (strings, weighted limits, lists) and bad input."""

from __future__ import annotations

import asyncio

import pytest

from opero import Limit, opero
from opero.limit_spec import limits_of, per_second
from opero.limits.rate import RateLimiter


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/second", 10.0),
        ("10/s", 10.0),
        ("10 / sec", 10.0),
        ("600/minute", 10.0),
        ("120/min", 2.0),
        ("60/m", 1.0),
        ("3600/hour", 1.0),
        ("7200/h", 2.0),
        ("1.5/s", 1.5),
        ("30000/Minute", 500.0),
    ],
)
def test_rate_strings(text: str, rate: float) -> None:
    assert per_second(text) == pytest.approx(rate)


def test_every_form_becomes_limits() -> None:
    cost = len
    weighted = Limit("30000/minute", cost=cost)
    limits = limits_of([5, "600/minute", weighted])
    assert limits is not None
    assert [limit.rate for limit in limits] == [5.0, 10.0, 500.0]
    assert limits[2] is weighted and limits[2].cost is cost
    assert limits_of(None) is None
    assert limits_of(weighted) == (weighted,)


def test_limit_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="> 0"):
        Limit(0)
    with pytest.raises(ValueError, match="cannot read"):
        Limit("many/minute")
    with pytest.raises(TypeError, match="callable"):
        Limit(5, cost=3)  # type: ignore[arg-type]

    async def tokens(prompt: str) -> int:
        return len(prompt)

    with pytest.raises(TypeError, match="plain function"):
        Limit(5, cost=tokens)  # type: ignore[arg-type]


def test_string_limit_spaces_admissions_exactly(clock) -> None:
    starts: list[float] = []

    @opero(cache=False, rate_limit="120/minute")
    def f() -> None:
        starts.append(clock.now)

    for _ in range(4):
        f()
    assert [round(b - a, 9) for a, b in zip(starts, starts[1:], strict=False)] == [0.5] * 3


def test_weighted_limit_moves_the_schedule_by_cost(clock) -> None:
    """100 units a second: an attempt of cost c moves the next admission c/100 s later."""
    starts: list[tuple[float, str]] = []

    @opero(cache=False, rate_limit=Limit(100, cost=len))
    def f(prompt: str) -> None:
        starts.append((clock.now, prompt))

    t0 = clock.now
    for prompt in ["x" * 50, "x" * 10, "x" * 200, "", "x" * 30]:
        f(prompt)
    times = [round(t - t0, 9) for t, _ in starts]
    # admissions: 0; +0.5 (cost 50); +0.1 (cost 10); +2.0 (cost 200); +0 (cost 0)
    assert times == [0.0, 0.5, 0.6, 2.6, 2.6]


def test_cost_larger_than_a_period_is_admitted_alone(clock) -> None:
    starts: list[float] = []

    @opero(cache=False, rate_limit=Limit("60/minute", cost=lambda n: n))
    def f(n: int) -> None:
        starts.append(clock.now)

    t0 = clock.now
    f(150)  # 150 units at 1 unit/s: admitted at once, the next waits 150 s
    f(1)
    f(1)
    assert [round(t - t0, 9) for t in starts] == [0.0, 150.0, 151.0]


def test_list_of_limits_admits_when_every_limit_does(clock) -> None:
    """2 per second and 30 tokens per second: the binding limit changes with the costs."""
    starts: list[float] = []

    @opero(cache=False, rate_limit=["2/second", Limit(30, cost=lambda n: n)])
    def f(n: int) -> None:
        starts.append(clock.now)

    t0 = clock.now
    for n in [3, 3, 3, 60, 3, 3]:
        f(n)
    # requests bind first (0.5 s apart); the 60-token call waits until it is alone in its
    # token window (a whole second's budget and more), and the request limit then catches up
    # what it lost meanwhile, never more than 2 in any second
    assert [round(t - t0, 9) for t in starts] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.1]


def test_limits_booked_together_never_burst_the_other() -> None:
    """Booking at a common time: an earlier wait on one limit is not credited to another."""
    lim = RateLimiter([Limit(1), Limit(1, cost=lambda n: n)])
    assert lim.reserve(0.0, [1, 5]) == 0.0
    assert lim.reserve(0.0, [1, 0.001]) == 5.0
    assert lim.reserve(0.0, [1, 0.001]) == 6.0  # 1/s still holds after the long wait


def test_cost_function_gets_the_fallback_value_in_place(clock) -> None:
    seen: list[tuple[str, str]] = []

    def tokens(prompt: str, model: str = "big") -> int:
        seen.append((prompt, model))
        return 1

    calls: list[str] = []

    @opero(
        cache=False,
        retries=0,
        arg_fallback="model",
        rate_limit=Limit(10, cost=tokens),
    )
    def ask(prompt: str, model: list[str] = ["big", "small"]) -> str:
        calls.append(model)  # type: ignore[arg-type]
        if model == "big":
            raise ConnectionError("big is down")
        return f"{prompt}@{model}"

    assert ask("hi") == "hi@small"
    assert seen == [("hi", "big"), ("hi", "small")]


@pytest.mark.parametrize(
    ("cost", "error", "words"),
    [
        (lambda x: -1, ValueError, ">= 0"),
        (lambda x: float("nan"), ValueError, ">= 0"),
        (lambda x: "3", TypeError, "number"),
        (lambda x: True, TypeError, "number"),
        (lambda x: 1 / 0, ZeroDivisionError, "division"),
    ],
)
def test_bad_cost_fails_the_call_without_retry(clock, cost, error, words) -> None:
    calls = 0

    @opero(cache=False, retries=3, rate_limit=Limit(10, cost=cost))
    def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return x

    with pytest.raises(error, match=words):
        f(1)
    assert calls == 0 and clock.sleeps == []


async def test_weighted_limit_async(clock) -> None:
    starts: list[float] = []

    @opero(cache=False, rate_limit=Limit("600/minute", cost=lambda n: n))
    async def f(n: int) -> None:
        starts.append(clock.now)

    t0 = clock.now
    for n in [5, 1, 2]:
        await f(n)
    assert [round(t - t0, 9) for t in starts] == [0.0, 0.5, 0.6]
    await asyncio.sleep(0)
