"""Process maps with per-item budgets (``deadline=``, ``timeout=``): an item is never queued
inside a worker behind another item, so it is never charged for another item's time, nor
killed with a worker cut for another item's budget.

Process workers are fed in batches; once the first items are measured as near-instant,
batches grow to several attempts. Here a slow item comes after many instant ones, inside
the same map call, so it would share a batch (and a worker) with the instant items after it
if batches were sized as they are without budgets. Every instant item must succeed and the
slow one alone must fail. Real processes; budgets and margins wide for a busy machine."""

from __future__ import annotations

import time
from typing import Any

import pytest

from opero import DeadlineExceededError, operomap

QUIET: dict[str, Any] = dict(cache=False, progress=False, return_exceptions=True, retries=0)

#: near-instant items before and after one slow item, all in one map call
BEFORE, AFTER = 40, 40
SLOW = 30.0  # never reached: cut long before


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def items() -> list[float]:
    return [0.0] * BEFORE + [SLOW] + [0.0] * AFTER


def check(results: list[Any], kind: type[BaseException]) -> None:
    slow = results[BEFORE]
    assert isinstance(slow, kind), slow
    others = results[:BEFORE] + results[BEFORE + 1 :]
    failed = {n: r for n, r in enumerate(others) if r != 0.0}
    assert not failed, failed  # no instant item charged for the slow one's time


@pytest.mark.timeout(120)
@pytest.mark.parametrize("workers", [2, 3])
def test_instant_items_never_share_a_worker_with_an_item_cut_at_its_deadline(
    workers: int,
) -> None:
    # 3 s: wide enough for a worker process to start on a busy machine, since an item's
    # budget counts from when the map takes it up
    mapped = operomap(mode="process", workers=workers, deadline=3.0, **QUIET)(nap)
    started = time.monotonic()
    results = mapped(items())
    elapsed = time.monotonic() - started
    check(results, DeadlineExceededError)
    assert elapsed < SLOW / 2, elapsed  # the slow item was cut, not waited for


@pytest.mark.timeout(120)
def test_instant_items_never_share_a_worker_with_an_item_cut_at_its_timeout() -> None:
    mapped = operomap(mode="process", workers=2, timeout=2.0, **QUIET)(nap)
    started = time.monotonic()
    results = mapped(items())
    elapsed = time.monotonic() - started
    check(results, TimeoutError)
    assert not isinstance(results[BEFORE], DeadlineExceededError)  # its own timeout
    assert elapsed < SLOW / 2, elapsed


@pytest.mark.timeout(120)
def test_a_map_under_a_deadline_started_after_warm_workers_keeps_every_instant_item() -> None:
    """The same with measured work from an earlier call of the same map function (each
    call has workers of its own: the guard must not depend on that)."""
    mapped = operomap(mode="process", workers=2, deadline=3.0, **QUIET)(nap)
    assert mapped([0.0] * 64) == [0.0] * 64
    results = mapped(items())
    check(results, DeadlineExceededError)
