"""``retry_on_result`` and ``retry_budget`` in maps: the predicate runs in the caller's
process (a closure, never pickled), a rejected result is retried and never cached (memory and
disk), all rejected -> RejectedResultError; the items of one map share one retry budget."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from opero import AllFailedError, RejectedResultError, RetryBudget, fallback, operomap

ITEMS = list(range(5))
RETRIES = 2


def _attempt(item: int, log: str) -> int:
    """Record an attempt of ``item`` in the file ``log`` (shared by worker processes);
    return how many attempts of it the file holds."""
    with open(log, "a") as f:
        f.write(f"{item} {os.getpid()}\n")
    with open(log) as f:
        return sum(1 for line in f if line.split()[0] == str(item))


def first_rejected(item: int, log: str) -> str:
    """'bad' on an item's first attempt, then its good result."""
    return "bad" if _attempt(item, log) == 1 else f"ok{item}"


def always_bad(item: int, log: str) -> str:
    _attempt(item, log)
    return "bad"


def bad_models(item: int, log: str, model: Any = fallback("a", "b")) -> str:
    _attempt(item, log)
    return "bad"


async def afirst_rejected(item: int, log: str) -> str:
    await asyncio.sleep(0)
    return first_rejected(item, log)


async def aalways_bad(item: int, log: str) -> str:
    await asyncio.sleep(0)
    return always_bad(item, log)


def _lines(log: Path) -> list[int]:
    """The items of the attempts recorded in ``log``, sorted."""
    return sorted(int(line.split()[0]) for line in log.read_text().splitlines())


def _pids(log: Path) -> set[int]:
    """The processes the attempts ran in."""
    return {int(line.split()[1]) for line in log.read_text().splitlines()}


class Mapped:
    """One kind of map: how to decorate and how to run it."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.options = options
        self.pool: ThreadPoolExecutor | None = None

    def make(self, sync: Callable[..., Any], coro: Callable[..., Any], **options: Any) -> Any:
        options = {**self.options, **options, "progress": False}
        if self.kind == "async":
            return operomap(**options)(coro)
        if self.kind == "executor":
            self.pool = self.pool or ThreadPoolExecutor(4)
            return operomap(executor=self.pool, **options)(sync)
        return operomap(mode=self.kind, workers=2, **options)(sync)

    def run(self, mapped: Any, log: Path) -> list[Any]:
        if self.kind == "async":
            return list(asyncio.run(mapped(ITEMS, str(log))))
        return list(mapped(ITEMS, str(log)))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


@pytest.fixture(params=["thread", "process", "async", "executor"])
def kind(request: pytest.FixtureRequest) -> Iterator[Mapped]:
    mapped = Mapped(request.param)
    yield mapped
    mapped.close()


@pytest.fixture(params=["memory", "disk"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "disk":
        return {"cache_backend": "disk", "cache_dir": tmp_path / "cache"}
    return {"cache_backend": "memory"}


def _predicate() -> tuple[Callable[[Any], bool], list[tuple[int, Any]]]:
    seen: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def reject(value: Any) -> bool:  # a closure: it cannot be pickled by reference
        with lock:
            seen.append((os.getpid(), value))
        return value == "bad"

    return reject, seen


def test_a_rejected_result_is_retried_in_the_caller_and_never_cached(
    kind: Mapped, backend: dict[str, Any], tmp_path: Path
) -> None:
    reject, seen = _predicate()
    options = {**backend, "retries": RETRIES, "min_delay": 0, "retry_on_result": reject}
    mapped = kind.make(first_rejected, afirst_rejected, **options)
    log = tmp_path / "attempts.log"
    assert kind.run(mapped, log) == [f"ok{i}" for i in ITEMS]
    assert _lines(log) == sorted(ITEMS * 2)  # each item: a rejected attempt, then a good one
    assert {pid for pid, _ in seen} == {os.getpid()}
    if kind.kind == "process":  # the attempts ran elsewhere, their results were judged here
        assert os.getpid() not in _pids(log)
    assert sorted(str(v) for _, v in seen) == sorted(["bad"] * 5 + [f"ok{i}" for i in ITEMS])
    stats = mapped.stats()
    assert stats.rejected == len(ITEMS)
    assert stats.failures == len(ITEMS)
    # the good results were cached, the rejected ones never were: a second map runs nothing
    assert kind.run(mapped, log) == [f"ok{i}" for i in ITEMS]
    assert _lines(log) == sorted(ITEMS * 2)
    assert mapped.stats().cache_hits == len(ITEMS)


def test_all_rejected_ends_each_item_with_rejected_result_error(
    kind: Mapped, backend: dict[str, Any], tmp_path: Path
) -> None:
    reject, seen = _predicate()
    options = {**backend, "retries": RETRIES, "min_delay": 0, "retry_on_result": reject}
    mapped = kind.make(always_bad, aalways_bad, return_exceptions=True, **options)
    log = tmp_path / "attempts.log"
    out = kind.run(mapped, log)
    assert all(type(r) is RejectedResultError and r.value == "bad" for r in out), out
    assert _lines(log) == sorted(ITEMS * (RETRIES + 1))
    assert {pid for pid, _ in seen} == {os.getpid()}
    assert len(seen) == len(ITEMS) * (RETRIES + 1)
    assert mapped.stats().rejected == len(ITEMS) * (RETRIES + 1)
    # nothing was cached: the next map runs every item again
    again = kind.run(mapped, log)
    assert all(type(r) is RejectedResultError for r in again), again
    assert _lines(log) == sorted(ITEMS * 2 * (RETRIES + 1))
    assert mapped.stats().cache_hits == 0


def test_all_rejected_with_fallback_values_is_all_failed(tmp_path: Path) -> None:
    reject, seen = _predicate()
    mapped = operomap(
        mode="process",
        workers=2,
        progress=False,
        return_exceptions=True,
        retries=1,
        min_delay=0,
        arg_fallback="model",
        retry_on_result=reject,
    )(bad_models)
    log = tmp_path / "attempts.log"
    out = mapped(ITEMS, str(log))
    for r in out:
        assert type(r) is AllFailedError, out
        assert [type(e) for e in r.exceptions] == [RejectedResultError] * 4
        assert [a.value for a in r.attempts] == ["a", "b", "a", "b"]
    assert _lines(log) == sorted(ITEMS * 4)
    assert {pid for pid, _ in seen} == {os.getpid()}


def test_a_predicate_that_raises_ends_the_item_with_its_error(tmp_path: Path) -> None:
    def broken(value: Any) -> bool:
        raise LookupError(f"cannot judge {value!r}")

    mapped = operomap(
        mode="thread",
        workers=2,
        progress=False,
        return_exceptions=True,
        retries=3,
        min_delay=0,
        retry_on_result=broken,
    )(first_rejected)
    log = tmp_path / "attempts.log"
    out = mapped(ITEMS, str(log))
    assert all(type(r) is LookupError for r in out), out
    assert _lines(log) == ITEMS  # not retried


# ----- retry_budget: the items of a map share one budget ---------------------------------------

N = 100


class Down(Exception):
    pass


def _failing_map(**options: Any) -> tuple[int, Any]:
    attempts: list[int] = []

    def down(item: int) -> int:
        attempts.append(item)
        raise Down(item)

    mapped = operomap(
        mode="thread",
        workers=8,
        cache=False,
        progress=False,
        return_exceptions=True,
        retries=3,
        min_delay=0,
        **options,
    )(down)
    out = mapped(range(N))
    assert all(isinstance(r, Down) for r in out)
    return len(attempts), mapped


def test_a_thread_map_shares_one_retry_budget() -> None:
    budget = RetryBudget(ratio=0.2, minimum=1, window=10)
    made, mapped = _failing_map(retry_budget=budget)
    without, _ = _failing_map()
    assert without == N * 4
    assert N <= made <= N * (1 + budget.ratio) + budget.minimum * budget.window
    stats = mapped.stats()
    assert stats.attempts == made
    assert stats.budget_refusals >= N - (made - N)
