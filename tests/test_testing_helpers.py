"""Testing helpers: set_testing() switches at once, restores as a context manager, and as a decorator
of a test function (sync or async) applies only while each call runs."""

from __future__ import annotations

import asyncio

import pytest

from opero import opero
from opero.core.clock import CLOCK
from opero.testing import is_testing, set_testing


def test_decorator_applies_only_during_calls() -> None:
    assert not is_testing()
    seen = []

    @set_testing()
    def a_test(x: int) -> int:
        seen.append(is_testing())
        return x * 2

    assert not is_testing()  # decorating undid the switch at once
    assert a_test(2) == 4
    assert seen == [True]
    assert not is_testing()


def test_decorator_restores_after_an_error() -> None:
    @set_testing()
    def failing() -> None:
        assert is_testing()
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing()
    assert not is_testing()


def test_decorator_on_async_test() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    @opero(retries=2, cache=False, min_delay=5, jitter=False)
    async def flaky(state: list[int]) -> str:
        state.append(1)
        if len(state) < 3:
            raise ValueError("again")
        return "ok"

    @set_testing()
    async def a_test() -> str:
        assert is_testing()
        return await flaky([])

    assert asyncio.iscoroutinefunction(a_test)
    assert not is_testing()
    real = CLOCK.async_sleep
    CLOCK.async_sleep = fake_sleep  # type: ignore[method-assign]
    try:
        assert asyncio.run(a_test()) == "ok"
    finally:
        CLOCK.async_sleep = real  # type: ignore[method-assign]
    assert sleeps == []  # no backoff waited in testing mode, same attempts
    assert not is_testing()


def test_decorator_with_false_turns_testing_off_inside() -> None:
    with set_testing():

        @set_testing(False)
        def a_test() -> bool:
            return is_testing()

        assert is_testing()  # decorating restored the surrounding state
        assert a_test() is False
        assert is_testing()
    assert not is_testing()
