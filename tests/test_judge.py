"""The judge as a pure decision object: what each outcome of an attempt means, with no
driver around it (the cross-path suite, test_one_judge.py, shows every path agrees)."""

from __future__ import annotations

from typing import Any

import pytest

from opero import AllFailedError
from opero.core.call import Services
from opero.core.judge import Judge
from opero.options import resolve


def judge(**options: Any) -> Judge:
    def work(x: int, model: Any = "a") -> int:
        return x

    return Judge(work, resolve({"jitter": False, **options}), "work", Services())


def test_a_success_returns_its_value_and_counts_once() -> None:
    j = judge()
    call = j.call((1,), {})
    assert j.settle(call, True, 1) is None
    assert j.counters.snapshot().successes == {None: 1}


def test_a_failure_in_retry_on_waits_then_the_last_one_raises_itself() -> None:
    j = judge(retries=1, min_delay=0.5)
    call = j.call((1,), {})
    assert j.settle(call, False, ValueError("one")) == 0.5
    last = ValueError("two")
    with pytest.raises(ValueError) as info:
        j.settle(call, False, last)
    assert info.value is last
    stats = j.counters.snapshot()
    assert (stats.failures, stats.retries) == (2, 1)


def test_an_exception_outside_retry_on_ends_the_call_at_once_and_counts() -> None:
    j = judge(retries=3, retry_on=ValueError)
    with pytest.raises(KeyError):
        j.settle(j.call((1,), {}), False, KeyError("x"))
    assert j.counters.snapshot().failures == 1


def test_fallback_values_are_tried_in_a_round_without_waiting() -> None:
    j = judge(retries=0, arg_fallback="model")
    call = j.call((1,), {"model": ["a", "b"]})
    assert call.attempt_args() == ((1,), {"model": "a"})
    assert j.settle(call, False, ValueError("a failed")) == 0.0
    assert call.attempt_args() == ((1,), {"model": "b"})
    with pytest.raises(AllFailedError) as info:
        j.settle(call, False, ValueError("b failed"))
    assert [a.value for a in info.value.attempts] == ["a", "b"]
    assert "(1 of 1 round(s) x 2 value(s) of model)" in str(info.value)


def test_a_coroutine_from_a_sync_function_is_refused_any_other_awaitable_is_a_value() -> None:
    j = judge()

    async def later() -> int:
        return 1

    with pytest.raises(TypeError, match="returned an awaitable"):
        j.settle(j.call((1,), {}), True, later())

    class Awaitable:
        def __await__(self) -> Any:
            return iter(())

    assert j.settle(j.call((1,), {}), True, Awaitable()) is None


def test_plain_means_nothing_to_judge_before_a_first_success() -> None:
    assert judge().plain
    assert judge(timeout=1).plain  # a timeout is how an attempt runs, not a judgement
    assert not judge(arg_fallback="model").plain
    from opero.limit_spec import limits_of
    from opero.limits.rate import RateLimiter

    def work(x: int) -> int:
        return x

    limited = Judge(work, resolve({}), "work", Services(limiter=RateLimiter(limits_of(5))))
    assert not limited.plain and limited.paced
    from opero.core.breaker import Breakers
    from opero.core.stats import Counters

    cooling = Judge(work, resolve({}), "work", Services(breakers=Breakers(5, 3, Counters())))
    assert not cooling.plain and cooling.paced
