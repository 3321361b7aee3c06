"""Hedged attempts seen through telemetry and hooks: one attempt span per attempt (the
loser's outcome ``hedge_cancelled``), the caller's context as it was after the call, and
each attempt running under its own span."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace

from opero import opero
from tests.telemetry_kit import attrs, children, otel, spans

__all__ = ["otel"]  # the fixture


def _outcomes() -> dict[str, str]:
    (call,) = spans("opero " + _qualname())
    return {
        str(attrs(s)["opero.fallback.value"]): str(attrs(s)["opero.attempt.outcome"])
        for s in children(call)
    }


_NAME: list[str] = []


def _qualname() -> str:
    return _NAME[-1]


def test_sync_attempt_spans_of_a_hedged_call(otel: Any) -> None:
    seen: dict[str, int] = {}

    @opero(telemetry=True, hedge=0.1, arg_fallback="v", cache=False)
    def f(v: list[str] = ["slow", "fast"]) -> str:
        seen[v] = trace.get_current_span().get_span_context().span_id
        time.sleep(0.4 if v == "slow" else 0.0)
        return v

    _NAME.append(f.__qualname__)
    before = trace.get_current_span()
    assert f() == "fast"
    assert trace.get_current_span() is before
    time.sleep(0.5)  # the loser ends
    assert _outcomes() == {"'slow'": "hedge_cancelled", "'fast'": "success"}
    (call,) = spans("opero " + _qualname())
    assert {s.context.span_id for s in children(call)} == set(seen.values())


async def test_async_first_attempt_wins_and_the_hedge_span_ends_cancelled(otel: Any) -> None:
    @opero(telemetry=True, hedge=0.1, arg_fallback="v", cache=False)
    async def f(v: list[str] = ["first", "hedge"]) -> str:
        await asyncio.sleep(0.25 if v == "first" else 2.0)
        return v

    _NAME.append(f.__qualname__)
    before = trace.get_current_span()
    assert await f() == "first"
    assert trace.get_current_span() is before
    assert _outcomes() == {"'first'": "success", "'hedge'": "hedge_cancelled"}


def test_on_attempt_contexts_are_all_exited() -> None:
    entered: list[object] = []
    exited: list[object] = []

    class Watch:
        def __init__(self, details: Any) -> None:
            self.value = details.value

        def __enter__(self) -> None:
            entered.append(self.value)

        def __exit__(self, *exc: object) -> None:
            exited.append(self.value)

    @opero(on_attempt=Watch, hedge=0.1, arg_fallback="v", cache=False)
    def f(v: list[str] = ["slow", "fast"]) -> str:
        time.sleep(0.4 if v == "slow" else 0.0)
        return v

    assert f() == "fast"
    assert entered == ["slow", "fast"]
    assert sorted(exited) == ["fast", "slow"]
