"""The retry budget's window on an injected clock: what it allows, when it refuses, and that
its cap holds over any span of ``window`` seconds."""

from __future__ import annotations

from typing import Any

import pytest

import opero
from opero import RetryBudget
from tests.conftest import FakeClock

BUDGET = RetryBudget(ratio=0.2, minimum=1, window=10)  #: a reserve of 10 retries


def _failing() -> tuple[Any, list[int]]:
    made: list[int] = []

    def down(i: int) -> int:
        made.append(i)
        raise ValueError(i)

    return opero.opero(cache=False, retries=3, min_delay=0, retry_budget=BUDGET)(down), made


def _calls(f: Any, n: int) -> list[ValueError]:
    errors = []
    for i in range(n):
        with pytest.raises(ValueError) as info:
            f(i)
        errors.append(info.value)
    return errors


def test_the_reserve_then_the_ratio_then_a_new_window(clock: FakeClock) -> None:
    f, made = _failing()
    errors = _calls(f, 10)
    # 10 calls: a reserve of 10 retries + 0.2 x 10 calls
    assert len(made) - 10 == 12
    refused = [e for e in errors if any("retry budget is spent" in n for n in e.__notes__ or ())]
    assert len(refused) == f.stats().budget_refusals == 7
    clock.advance(10.5)  # every earlier call and retry is out of the window
    made.clear()
    _calls(f, 1)
    assert len(made) == 4  # a lone failing call makes all its retries again


def test_no_span_of_one_window_holds_more_retries_than_the_cap(clock: FakeClock) -> None:
    clock.now = 1000.5  # the first call halfway through a bucket
    f, made = _failing()
    _calls(f, 10)
    clock.advance(9.6)  # still inside the window of the first calls
    _calls(f, 1)
    calls, retries = 11, len(made) - 11
    assert retries <= BUDGET.ratio * calls + BUDGET.minimum * BUDGET.window
