"""Deadlines in maps: ``deadline=`` is per item, counted from when the map takes the item up;
a map called inside ``opero.deadline()`` starts no item after it; an attempt cut at its
deadline leaves the map healthy (its thread runs on, its worker process is replaced); and
the function running in a map's thread sees its item's deadline."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest

import opero
from opero import DeadlineExceededError, OperoError, operomap

QUIET: dict[str, Any] = dict(cache=False, progress=False, return_exceptions=True, retries=0)


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def pid_after(seconds: float, note: str = "") -> int:
    """Sleep ``seconds`` (after writing this process's id to the file ``note``, if any)."""
    if note:
        with open(note, "w") as out:
            out.write(str(os.getpid()))
    time.sleep(seconds)
    return os.getpid()


def _pid_after(args: tuple[float, str]) -> int:
    return pid_after(*args)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_slow_item_fails_at_its_deadline_and_the_others_succeed(mode: str) -> None:
    # a budget wide enough for a worker process to start on a busy machine: an item's budget
    # counts from when the map takes it up, the start of the map's own workers included (each
    # map call starts its own; under coverage on two loaded cores a start took 1.4 s)
    budget = 3.0 if mode == "process" else 1.5
    mapped = operomap(mode=mode, workers=2, deadline=budget, **QUIET)(nap)
    mapped([0.0] * 4)  # the caller's imports done
    started = time.monotonic()
    results = mapped([budget * 4] + [0.01] * 8)
    elapsed = time.monotonic() - started
    assert isinstance(results[0], DeadlineExceededError), results[0]
    assert isinstance(results[0], TimeoutError) and isinstance(results[0], OperoError)
    assert results[1:] == [0.01] * 8
    assert elapsed < budget * 3, elapsed  # not the slow item's whole sleep


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_an_item_cut_at_its_deadline_does_not_hold_its_worker(mode: str) -> None:
    """One worker: the first item sleeps 6 s and is cut at 1.5 s (wide enough for a new
    worker process to start on a busy machine). Items taken up after that still get a worker
    (a thread is added while the cut attempt runs on; the process running it is replaced) and
    succeed."""
    mapped = operomap(mode=mode, workers=1, deadline=1.5, **QUIET)(nap)
    mapped([0.0])
    started = time.monotonic()
    results = mapped([6.0] + [0.01] * 20)
    elapsed = time.monotonic() - started
    assert isinstance(results[0], DeadlineExceededError)
    # the items taken up with the slow one (while it held the worker) may run out of time;
    # those taken up after it was cut succeed
    assert results[-8:] == [0.01] * 8, results
    assert elapsed < 5, elapsed  # not the 6 s of the slow item


@pytest.mark.timeout(60)
def test_a_process_whose_attempt_was_cut_is_replaced(tmp_path: Any) -> None:
    note = str(tmp_path / "pid")
    mapped = operomap(mode="process", workers=1, deadline=1.5, **QUIET)(_pid_after)
    results = mapped([(6.0, note)] + [(0.0, "")] * 12)
    assert isinstance(results[0], DeadlineExceededError)
    with open(note) as inp:
        cut = int(inp.read())
    later = {r for r in results[4:] if isinstance(r, int)}
    assert later and cut not in later  # a new worker ran the items after the cut
    with pytest.raises(ProcessLookupError):  # the worker running the cut attempt is gone
        os.kill(cut, 0)


@pytest.mark.timeout(60)
def test_a_nested_call_in_a_thread_map_sees_the_items_deadline() -> None:
    attempts: list[float] = []

    @opero.opero(retries=6, min_delay=0.2, backoff_factor=2, jitter=False, cache=False)
    def inner(x: int) -> int:
        attempts.append(time.monotonic())
        raise ValueError(x)

    def item(x: int) -> int:
        return inner(x)

    mapped = operomap(mode="thread", workers=1, deadline=0.5, **QUIET)(item)
    started = time.monotonic()
    results = mapped([1])
    elapsed = time.monotonic() - started
    error = results[0]
    assert isinstance(error, DeadlineExceededError), error
    # raised by the inner call, before its second backoff (0.4 s) would cross the budget
    assert len(error.attempts) == 2
    assert all(isinstance(a.exception, ValueError) for a in error.attempts)
    assert len(attempts) == 2
    assert elapsed < 0.45, elapsed


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_map_inside_a_deadline_starts_no_item_after_it(mode: str) -> None:
    mapped = operomap(mode=mode, workers=1, **QUIET)(nap)
    mapped([0.0])
    started = time.monotonic()
    with opero.deadline(2.5):  # wide: a worker process may be slow to start on a busy machine
        results = mapped([0.5] * 10)
    elapsed = time.monotonic() - started
    done = [r for r in results if r == 0.5]
    refused = [r for r in results if isinstance(r, DeadlineExceededError)]
    assert 1 <= len(done) <= 5
    assert len(done) + len(refused) == 10
    assert any("not started" in str(r) for r in refused)
    assert elapsed < 4.5, elapsed  # not the 5 s of every item
    # the warm-up, the items done and at most one attempt cut at the deadline
    assert mapped.stats().attempts <= 1 + len(done) + 1


def test_an_async_map_inside_a_deadline_starts_no_item_after_it() -> None:
    calls: list[int] = []

    async def work(i: int) -> int:
        calls.append(i)
        await asyncio.sleep(0.2)
        return i

    mapped = operomap(mode="async", workers=1, **QUIET)(work)

    async def main() -> list[Any]:
        async with opero.deadline(0.5):
            return await mapped(range(10))

    results = asyncio.run(main())
    assert results[:2] == [0, 1]
    assert all(isinstance(r, DeadlineExceededError) for r in results[3:])
    assert len(calls) <= 3


def test_a_cache_hit_is_answered_after_the_maps_deadline() -> None:
    mapped = operomap(workers=1, cache=True, progress=False, return_exceptions=True)(nap)
    assert mapped([0.05]) == [0.05]
    with opero.deadline(0.3):  # the first four items are taken up at once; the rest later
        results = mapped([0.4, 0.01, 0.01, 0.01, 0.02, 0.05])
    assert all(isinstance(r, DeadlineExceededError) for r in results[:5]), results
    assert "not started" in str(results[4])
    assert results[5] == 0.05  # from the cache
