"""Telemetry of maps: each item is a call span, a child of the span current when the map
was called, and its attempts are children of the item's span — also when the attempts run
in worker processes (the spans are recorded in the caller)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from opentelemetry import trace

import opero.telemetry
from opero import operomap
from tests.telemetry_kit import attrs, children, otel, spans

__all__ = ["otel"]  # the fixture


def flaky_square(x: int, where: str) -> int:
    """Fails on its first attempt for odd items (a file in ``where`` marks the first try)."""
    import os

    mark = os.path.join(where, str(x))
    if x % 2 and not os.path.exists(mark):
        open(mark, "w").close()
        raise ConnectionError(x)
    return x * x


def check_tree(name: str, caller: Any, items: int, failed_first: int) -> None:
    calls = spans(f"opero {name}")
    assert len(calls) == items
    assert {c.parent.span_id for c in calls if c.parent} == {caller.get_span_context().span_id}
    attempts = [a for c in calls for a in children(c)]
    assert all(a.name == "opero.attempt" for a in attempts)
    assert len(attempts) == items + failed_first  # every attempt is a child of its item
    outcomes = sorted(attrs(a)["opero.attempt.outcome"] for a in attempts)
    assert outcomes == ["failure"] * failed_first + ["success"] * items


@pytest.mark.parametrize("mode", ["thread", "process", "executor"])
def test_item_spans_are_children_of_the_span_current_at_the_map_call(
    otel: Any, mode: str, tmp_path: Any
) -> None:
    where: dict[str, Any] = {"mode": mode}
    if mode == "executor":  # (Dask maps take this path too)
        where = {"executor": ThreadPoolExecutor(2)}
    squares = operomap(
        **where, workers=2, cache=False, retries=1, min_delay=0, progress=False, telemetry=True
    )(flaky_square)
    xs = list(range(6))
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        assert squares(xs, str(tmp_path)) == [x * x for x in xs]
    check_tree(flaky_square.__qualname__, caller, 6, 3)
    if mode == "executor":
        where["executor"].shutdown()


def test_cache_hits_of_a_map_and_enable_on_a_map_decorated_before(otel: Any) -> None:
    @operomap(mode="thread", workers=2, progress=False)
    def double(x: int) -> int:
        return 2 * x

    assert double([1, 2]) == [2, 4]
    assert spans() == []
    opero.telemetry.enable()
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        assert double([1, 2, 3]) == [2, 4, 6]  # 1 and 2 from the cache
    calls = spans(f"opero {double.__qualname__}")
    assert {c.parent.span_id for c in calls if c.parent} == {caller.get_span_context().span_id}
    assert sorted(attrs(c)["opero.cache.hit"] for c in calls) == [False, True, True]
    assert [len(children(c)) for c in calls if not attrs(c)["opero.cache.hit"]] == [1]
    assert double.stats().calls == 5  # the twin shares the map's stats
    opero.telemetry.disable()
    double([4])
    assert len(spans(f"opero {double.__qualname__}")) == 3


async def test_an_async_map(otel: Any) -> None:
    failed: set[int] = set()

    @operomap(
        mode="async", workers=3, cache=False, retries=1, min_delay=0, progress=False, telemetry=True
    )
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        if x % 2 and x not in failed:
            failed.add(x)
            raise ConnectionError(x)
        return x

    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        assert await fetch(range(6)) == list(range(6))
    check_tree(fetch.__qualname__, caller, 6, 3)
