"""Call policy on one call: deadlines, result checks and retry budgets, with an injected
clock (the real-time cuts of a running attempt are at the end, with wide margins)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import opero
from opero import DeadlineExceededError, RejectedResultError, RetryBudget
from opero.core.budget import Budget


def failing(log: list[float], clock: Any) -> Any:
    def fn(x: int) -> int:
        log.append(clock.now)
        raise ValueError(f"attempt {len(log)}")

    return fn


# ----- deadlines ----------------------------------------------------------------------------
def test_a_backoff_that_would_cross_the_deadline_is_not_taken(clock: Any) -> None:
    log: list[float] = []
    f = opero.opero(deadline=5, retries=10, min_delay=1, backoff_factor=2, jitter=False)(
        failing(log, clock)
    )
    with pytest.raises(DeadlineExceededError) as info:
        f(1)
    assert clock.sleeps == [1, 2]  # the next wait (4 s, to t=7) would end after t=5
    assert log == [1000, 1001, 1003]
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, opero.OperoError)
    assert str(info.value.__cause__) == "attempt 3"
    assert [str(a.exception) for a in info.value.attempts] == [
        "attempt 1",
        "attempt 2",
        "attempt 3",
    ]
    assert f.stats().deadlines == 1 and f.stats().attempts == 3


def test_a_rate_limit_slot_after_the_deadline_is_not_booked(clock: Any) -> None:
    log: list[float] = []
    f = opero.opero(deadline=2.5, retries=10, min_delay=0, rate_limit=1, cache=False)(
        failing(log, clock)
    )
    with pytest.raises(DeadlineExceededError):
        f(1)
    assert log == [1000, 1001, 1002]  # the slot at t=1003 is after the deadline
    g = opero.opero(rate_limit=1, cache=False)(lambda x: x)
    clock.advance(0.5)
    judge = f.__opero_judge__  # the refused slot was given back: the next caller gets t=1003
    assert judge.limiter.reserve(clock.now) == pytest.approx(1003)
    assert g(1) == 1


def test_an_enclosing_deadline_bounds_calls_without_their_own(clock: Any) -> None:
    log: list[float] = []
    inner = opero.opero(retries=10, min_delay=1, backoff_factor=1, jitter=False)(
        failing(log, clock)
    )
    with opero.deadline(3.5):
        with pytest.raises(DeadlineExceededError):
            inner(1)
    assert log == [1000, 1001, 1002, 1003]
    with pytest.raises(ValueError):  # outside: the budget is gone
        inner(2)


def test_the_earliest_deadline_wins_and_is_passed_to_nested_calls(clock: Any) -> None:
    log: list[float] = []
    inner = opero.opero(deadline=100, retries=10, min_delay=1, backoff_factor=1, jitter=False)(
        failing(log, clock)
    )

    @opero.opero(deadline=2.5, retries=0, cache=False)
    def outer(x: int) -> int:
        return inner(x)

    with pytest.raises(DeadlineExceededError):
        outer(1)
    assert log == [1000, 1001, 1002]


def test_a_cache_hit_is_never_refused_and_a_spent_budget_makes_no_attempt(clock: Any) -> None:
    calls: list[int] = []

    @opero.opero(retries=0)
    def f(x: int) -> int:
        calls.append(x)
        return x

    assert f(1) == 1
    with opero.deadline(1):
        clock.advance(2)
        assert f(1) == 1  # a hit
        with pytest.raises(DeadlineExceededError) as info:
            f(2)
    assert calls == [1] and info.value.__cause__ is None and info.value.attempts == ()


async def test_async_deadlines_refuse_waits_and_propagate(clock: Any) -> None:
    log: list[float] = []

    @opero.opero(retries=10, min_delay=1, backoff_factor=1, jitter=False)
    async def inner(x: int) -> int:
        log.append(clock.now)
        raise ValueError(x)

    @opero.opero(deadline=2.5, retries=0, cache=False)
    async def outer(x: int) -> int:
        return await inner(x)

    with pytest.raises(DeadlineExceededError):
        await outer(1)
    assert log == [1000, 1001, 1002]
    async with opero.deadline(1.5):
        with pytest.raises(DeadlineExceededError):
            await inner(2)
    assert len(log) == 5


def test_bad_deadlines_are_refused() -> None:
    with pytest.raises(ValueError, match="deadline"):
        opero.opero(deadline=0)
    with pytest.raises(ValueError, match="deadline"):
        opero.deadline(-1)
    with pytest.raises(TypeError, match="deadline"):
        opero.deadline("2")  # type: ignore[arg-type]


# ----- results ------------------------------------------------------------------------------
def test_a_rejected_result_is_retried_and_never_cached() -> None:
    answers = iter(["", "", "{}", "{}"])

    @opero.opero(retries=3, min_delay=0, retry_on_result=lambda r: r == "")
    def ask(q: str) -> str:
        return next(answers)

    assert ask("q") == "{}"
    assert ask.stats().rejected == 2 and ask.stats().failures == 2
    assert ask("q") == "{}" and ask.cache_info().currsize == 1  # only the accepted answer


def test_all_rejected_raises_with_the_value_and_a_hit_is_returned_as_stored() -> None:
    strict = [False]

    @opero.opero(retries=1, min_delay=0, retry_on_result=lambda r: strict[0])
    def f(x: int) -> int:
        return x * 10

    assert f(1) == 10
    strict[0] = True
    assert f(1) == 10  # the stored answer is not judged again
    with pytest.raises(RejectedResultError) as info:
        f(2)
    assert info.value.value == 20 and f.stats().rejected == 2


def test_a_raising_result_predicate_ends_the_call_with_its_error() -> None:
    calls: list[int] = []

    def broken(result: Any) -> bool:
        raise KeyError("broken predicate")

    @opero.opero(retries=3, min_delay=0, retry_on_result=broken)
    def f(x: int) -> int:
        calls.append(x)
        return x

    with pytest.raises(KeyError, match="broken predicate"):
        f(1)
    assert calls == [1]


def test_a_coroutine_result_predicate_is_refused_at_decoration() -> None:
    async def predicate(result: Any) -> bool:
        return True

    with pytest.raises(TypeError, match="retry_on_result"):
        opero.opero(retry_on_result=predicate)


# ----- retry budgets --------------------------------------------------------------------------
def test_the_budget_allows_a_share_of_recent_calls_plus_a_reserve(clock: Any) -> None:
    budget = Budget(RetryBudget(ratio=0.5, minimum=0, window=10))
    for _ in range(10):
        budget.deposit()
    assert [budget.withdraw() for _ in range(6)] == [True] * 5 + [False]
    clock.advance(11)  # the calls left the window
    assert not budget.withdraw()
    reserve = Budget(RetryBudget(ratio=0, minimum=1, window=10))
    assert [reserve.withdraw() for _ in range(11)] == [True] * 10 + [False]


def test_a_spent_budget_ends_the_call_with_a_note_but_never_refuses_fallback(clock: Any) -> None:
    tried: list[str] = []

    @opero.opero(
        arg_fallback="model", retries=3, min_delay=0, retry_budget=RetryBudget(0, minimum=0)
    )
    def ask(q: str, model: Any = ("a", "b")) -> str:
        tried.append(model)
        raise ValueError(model)

    with pytest.raises(opero.AllFailedError) as info:
        ask("q")
    assert tried == ["a", "b"]  # the second value was still tried
    assert any("retry budget is spent" in n for n in info.value.__notes__)
    assert ask.stats().budget_refusals == 1 and ask.stats().retries == 0


def test_bad_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="retry_budget"):
        opero.opero(retry_budget=1.5)
    with pytest.raises(TypeError, match="retry_budget"):
        opero.opero(retry_budget="0.2")
    with pytest.raises(ValueError, match="window"):
        RetryBudget(window=0)
    assert RetryBudget(0.2) == RetryBudget()


# ----- real time: a running attempt is cut at the deadline ---------------------------------
def test_a_sync_attempt_that_runs_on_is_cut_at_the_deadline() -> None:
    @opero.opero(deadline=0.3, retries=5, cache=False)
    def slow(x: int) -> int:
        time.sleep(2)
        return x

    started = time.monotonic()
    with pytest.raises(DeadlineExceededError) as info:
        slow(1)
    assert time.monotonic() - started < 1.5
    assert isinstance(info.value.__cause__, TimeoutError)
    assert slow.stats().failures == 1


async def test_an_async_attempt_is_cancelled_at_the_deadline() -> None:
    @opero.opero(deadline=0.3, retries=5, cache=False)
    async def slow(x: int) -> int:
        await asyncio.sleep(2)
        return x

    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        await slow(1)
    assert time.monotonic() - started < 1.5
