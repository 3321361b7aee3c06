"""OpenTelemetry: a span per call, a child span per attempt, wait events and metrics, read
back through the SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import opero.telemetry
from opero import opero as decorate
from tests.telemetry_kit import attrs, children, otel, spans, total, totals

__all__ = ["otel"]  # the fixture


class HTTPError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


class SlowDown(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"slow down {seconds}")
        self.retry_after = seconds


def test_a_call_is_a_span_with_one_child_per_attempt(otel: Any) -> None:
    answers = iter([HTTPError(503), HTTPError(503), HTTPError(503), "ok"])

    @decorate(telemetry=True, retries=2, min_delay=0.01, jitter=False, arg_fallback="model")
    def ask(q: str, model: tuple[str, ...] = ("big", "small")) -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return f"{q}@{model}"

    before = totals()
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        assert ask("hi") == "hi@small"
    (call,) = spans(f"opero {ask.__qualname__}")
    assert call.parent is not None and call.parent.span_id == caller.get_span_context().span_id
    assert attrs(call) == {"opero.function": ask.__qualname__, "opero.cache.hit": False}
    tried = children(call)
    assert [s.name for s in tried] == ["opero.attempt"] * 4
    assert [
        (a["opero.attempt.round"], a["opero.fallback.value"], a["opero.attempt.outcome"])
        for a in map(attrs, tried)
    ] == [
        (1, "'big'", "failure"),
        (1, "'small'", "failure"),
        (2, "'big'", "failure"),
        (2, "'small'", "success"),
    ]
    failed = attrs(tried[0])
    assert failed["error.type"] == f"{__name__}.HTTPError"
    assert failed["http.response.status_code"] == 503
    assert tried[0].status.status_code is StatusCode.ERROR
    assert "error.type" not in attrs(tried[3])
    waits = [dict(e.attributes or {}) for e in call.events if e.name == "opero.wait"]
    assert waits == [{"opero.wait.reason": "backoff", "opero.wait.seconds": 0.01}]

    seen = totals()
    name = ask.__qualname__
    delta = {
        metric: total(seen, metric, opero_function=name)
        - total(before, metric, opero_function=name)
        for metric in (
            "opero.calls",
            "opero.attempts",
            "opero.failures",
            "opero.retries",
            "opero.cache.hits",
            "opero.attempt.duration",
            "opero.wait.duration",
        )
    }
    assert delta == {
        "opero.calls": 1,
        "opero.attempts": 4,
        "opero.failures": 3,
        "opero.retries": 1,
        "opero.cache.hits": 0,
        "opero.attempt.duration": 4,
        "opero.wait.duration": 1,
    }
    assert (
        total(
            seen,
            "opero.attempts",
            opero_function=name,
            opero_fallback_value="'small'",
            opero_attempt_outcome="success",
        )
        == 1
    )
    assert total(seen, "opero.wait.duration", opero_function=name, opero_wait_reason="backoff") == 1


def test_a_cache_hit_is_a_call_span_without_attempts(otel: Any) -> None:
    @decorate(telemetry=True)
    def f(x: int) -> int:
        return x * 2

    before = totals()
    assert f(2) == 4 and f(2) == 4
    first, second = spans(f"opero {f.__qualname__}")
    assert attrs(first)["opero.cache.hit"] is False and len(children(first)) == 1
    assert attrs(second)["opero.cache.hit"] is True and children(second) == []
    seen, name = totals(), f.__qualname__
    assert (
        total(seen, "opero.cache.hits", opero_function=name)
        - total(before, "opero.cache.hits", opero_function=name)
        == 1
    )
    assert (
        total(seen, "opero.calls", opero_function=name)
        - total(before, "opero.calls", opero_function=name)
        == 2
    )


def test_rejections_timeouts_and_a_failed_call(otel: Any) -> None:
    results = iter(["", "fine"])

    @decorate(
        telemetry=True, cache=False, retries=1, min_delay=0, retry_on_result=lambda r: r == ""
    )
    def picky() -> str:
        return next(results)

    @decorate(telemetry=True, cache=False, retries=0, timeout=0.05)
    def slow() -> None:
        time.sleep(0.5)

    assert picky() == "fine"
    (call,) = spans(f"opero {picky.__qualname__}")
    rejected, accepted = (attrs(s) for s in children(call))
    assert rejected["opero.attempt.outcome"] == "rejected"
    assert rejected["error.type"] == "opero.errors.RejectedResultError"
    assert accepted["opero.attempt.outcome"] == "success"

    with pytest.raises(TimeoutError):
        slow()
    (call,) = spans(f"opero {slow.__qualname__}")
    (attempt,) = children(call)
    assert attrs(attempt)["opero.attempt.outcome"] == "timeout"
    assert attrs(attempt)["error.type"] == "TimeoutError"
    assert call.status.status_code is StatusCode.ERROR
    assert attrs(call)["error.type"] == "TimeoutError" and attrs(call)["opero.cache.hit"] is False
    assert any(e.name == "exception" for e in call.events)


def test_pause_and_rate_limit_waits_are_events_of_the_call(otel: Any) -> None:
    calls: list[int] = []

    @decorate(telemetry=True, cache=False, retries=0)
    def paused(x: int) -> int:
        calls.append(x)
        if len(calls) == 1:
            raise SlowDown(0.05)
        return x

    @decorate(telemetry=True, cache=False, rate_limit=10)
    def limited(x: int) -> int:
        return x

    with pytest.raises(SlowDown):
        paused(1)
    assert paused(2) == 2
    _, second = spans(f"opero {paused.__qualname__}")
    (wait,) = [dict(e.attributes or {}) for e in second.events]
    assert wait["opero.wait.reason"] == "pause" and 0 < wait["opero.wait.seconds"] <= 0.05

    limited(1)
    limited(2)
    _, second = spans(f"opero {limited.__qualname__}")
    (wait,) = [dict(e.attributes or {}) for e in second.events]
    assert wait["opero.wait.reason"] == "rate_limit" and 0 < wait["opero.wait.seconds"] <= 0.1


async def test_async_calls_and_spans_made_inside_an_attempt(otel: Any) -> None:
    tracer = trace.get_tracer("test")
    failures = [ValueError("once")]

    @decorate(telemetry=True, cache=False, retries=1, min_delay=0)
    async def fetch(x: int) -> int:
        with tracer.start_as_current_span("inside"):
            await asyncio.sleep(0)
            if failures:
                raise failures.pop()
        return x

    with tracer.start_as_current_span("caller") as caller:
        assert await asyncio.gather(fetch(1), fetch(2)) == [1, 2]
    calls = spans(f"opero {fetch.__qualname__}")
    assert len(calls) == 2
    assert {c.parent.span_id for c in calls if c.parent} == {caller.get_span_context().span_id}
    outcomes = sorted(attrs(a)["opero.attempt.outcome"] for c in calls for a in children(c))
    assert outcomes == ["failure", "success", "success"]
    for attempt in spans("opero.attempt"):
        (inner,) = children(attempt)  # the function's own span is a child of its attempt
        assert inner.name == "inside"


def test_enable_covers_functions_decorated_before_and_disable_undoes_it(otel: Any) -> None:
    @decorate(cache=False)
    def plain(x: int) -> int:
        return x

    @decorate()
    def cached(x: int) -> int:
        return x

    @decorate(cache=False, telemetry=False)
    def opted_out(x: int) -> int:
        return x

    plain(1), cached(1), opted_out(1)
    assert spans() == []
    opero.telemetry.enable()
    assert opero.telemetry.enabled()
    plain(2), cached(1), cached(2), opted_out(2)
    assert [s.name for s in spans() if s.name != "opero.attempt"] == [
        f"opero {plain.__qualname__}",
        f"opero {cached.__qualname__}",
        f"opero {cached.__qualname__}",
    ]
    hit, miss = spans(f"opero {cached.__qualname__}")
    assert attrs(hit)["opero.cache.hit"] is True and attrs(miss)["opero.cache.hit"] is False
    assert plain.stats().calls == 2 and cached.stats().cache_hits == 1  # one set of stats
    assert cached.stats().calls == 3
    variant = plain.with_options(retries=0)
    variant(3)
    assert len(spans(f"opero {plain.__qualname__}")) == 2
    opero.telemetry.disable()
    count = len(spans())
    plain(4), cached(5), variant(6)
    assert len(spans()) == count and not opero.telemetry.enabled()


def test_with_options_of_a_traced_function_is_traced(otel: Any) -> None:
    @decorate(telemetry=True)
    def f(x: int) -> int:
        return x

    f.with_options(cache=False)(1)
    f.with_options(cache="refresh")(1)
    calls = spans(f"opero {f.__qualname__}")
    assert [attrs(c)["opero.cache.hit"] for c in calls] == [False, False]
    assert all(len(children(c)) == 1 for c in calls)


def test_an_on_attempt_hook_runs_inside_the_attempt_span(otel: Any) -> None:
    seen: list[Any] = []

    def hook(details: Any) -> None:
        seen.append(trace.get_current_span().get_span_context().span_id)

    @decorate(telemetry=True, cache=False, on_attempt=hook)
    def f() -> int:
        return 1

    f()
    (attempt,) = spans("opero.attempt")
    assert seen == [attempt.context.span_id]
