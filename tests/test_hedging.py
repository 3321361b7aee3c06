"""Hedged attempts with the other rules: cache hits never hedge, a deadline bounds hedges,
a failing hedge does not end the call while another attempt runs, retries go on once every
attempt in flight failed, concurrency and cooldowns hold, ``hedge_max`` extra attempts at
most, process maps do not hedge, and abandoned sync attempts leave no thread behind. Real
time (hedges are about latency), with wide margins."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque

import pytest

from opero import AllFailedError, DeadlineExceededError, opero, operomap

SLOW = 2.0


class Script:
    """What successive attempts do: sleep, then return or raise (thread-safe)."""

    def __init__(self, *steps: tuple[float, object]) -> None:
        self.steps = deque(steps)
        self.lock = threading.Lock()
        self.started: list[tuple[float, object]] = []

    def next(self, value: object = None) -> tuple[float, object]:
        with self.lock:
            self.started.append((time.monotonic(), value))
            return self.steps.popleft() if self.steps else (0.0, "ok")

    def run(self, value: object = None) -> object:
        seconds, outcome = self.next(value)
        time.sleep(seconds)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def run_async(self, value: object = None) -> object:
        seconds, outcome = self.next(value)
        await asyncio.sleep(seconds)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_a_cache_hit_never_hedges() -> None:
    script = Script((0.3, "first"), (0.0, "hedge"))

    @opero(hedge=0.1)
    def f(x: int) -> object:
        return script.run(x)

    assert f(1) == "hedge"
    time.sleep(0.4)  # the abandoned first attempt ends
    assert f(1) == "hedge"  # from the cache: no attempt, no hedge
    s = f.stats()
    assert (s.calls, s.cache_hits, s.attempts, s.hedges) == (2, 1, 2, 1)


def test_hedge_max_bounds_the_attempts_in_flight() -> None:
    script = Script((0.8, "a"), (0.8, "b"), (0.8, "c"), (0.0, "d"))

    @opero(hedge=0.1, hedge_max=2, cache=False)
    def f() -> object:
        return script.run()

    assert f() == "a"  # the three in flight end together; no fourth was started
    s = f.stats()
    assert (s.attempts, s.hedges) == (3, 2)
    starts = [t for t, _ in script.started]
    assert starts[1] - starts[0] >= 0.06 and starts[2] - starts[0] >= 0.16  # (thread starts vary)


def test_a_failing_hedge_does_not_end_the_call() -> None:
    script = Script((0.5, "slow"), (0.0, ConnectionError("hedge down")))

    @opero(hedge=0.3, cache=False)  # (the next hedge would be due after the first ends)
    def f() -> object:
        return script.run()

    assert f() == "slow"
    s = f.stats()
    assert (s.attempts, s.failures, s.hedges, s.hedge_wins, s.retries) == (2, 1, 1, 0, 0)


def test_a_failing_value_is_not_tried_again_in_its_round() -> None:
    calls: list[str] = []
    lock = threading.Lock()

    @opero(hedge=0.3, arg_fallback="v", retries=0, cache=False)
    def f(v: list[str] = ["a", "b", "c"]) -> str:
        with lock:
            calls.append(v)
        if v == "a":
            time.sleep(0.45)
            raise ConnectionError("a")
        if v == "b":
            raise ConnectionError("b")
        return v

    assert f() == "c"
    # b (the hedge) failed at once while a ran; once a failed, the call went on to c
    assert calls == ["a", "b", "c"]


def test_retries_go_on_after_every_attempt_in_flight_failed() -> None:
    script = Script(
        (0.3, ConnectionError("first")),
        (0.05, ConnectionError("hedge")),
        (0.0, "round two"),
    )

    @opero(hedge=0.2, retries=1, min_delay=0.01, cache=False)
    def f() -> object:
        return script.run()

    assert f() == "round two"
    s = f.stats()
    assert (s.attempts, s.failures, s.retries, s.hedges) == (3, 2, 1, 1)


def test_every_value_failing_ends_with_all_failed() -> None:
    @opero(hedge=0.05, arg_fallback="v", retries=0, cache=False)
    def f(v: list[str] = ["a", "b"]) -> str:
        time.sleep(0.2 if v == "a" else 0.0)
        raise ConnectionError(v)

    with pytest.raises(AllFailedError) as info:
        f()
    assert sorted(str(e) for e in info.value.exceptions) == ["a", "b"]


def test_a_deadline_bounds_hedges() -> None:
    script = Script(*[(SLOW, "late")] * 5)

    @opero(hedge=0.15, deadline=0.5, retries=3, cache=False)
    def f() -> object:
        return script.run()

    start = time.monotonic()
    with pytest.raises((DeadlineExceededError, TimeoutError)):
        f()
    assert time.monotonic() - start < SLOW / 2
    assert len(script.started) <= 3  # hedge_max=1: at most one hedge in flight


def test_concurrency_leaves_no_slot_for_a_hedge() -> None:
    script = Script((0.6, "only"), (0.0, "hedge"))

    @opero(hedge=0.1, concurrency=1, cache=False)
    def f() -> object:
        return script.run()

    start = time.monotonic()
    assert f() == "only"
    assert time.monotonic() - start >= 0.55
    assert f.stats().hedges == 0


def test_an_open_breaker_is_skipped_by_a_hedge() -> None:
    tried: list[str] = []

    @opero(
        hedge=0.1,
        arg_fallback="v",
        retries=0,
        cooldown=60,
        cooldown_after=1,
        cache=False,
    )
    def f(v: list[str] = ["slow", "broken", "c"]) -> str:
        tried.append(v)
        if v == "broken":
            raise ConnectionError("broken")
        if v == "slow":
            time.sleep(1.2)
        return v

    with pytest.raises(AllFailedError):
        f(v=["broken"])  # opens its breaker
    tried.clear()
    start = time.monotonic()
    assert f() == "c"
    assert time.monotonic() - start < 0.9  # the hedge's answer, not the slow one
    assert tried == ["slow", "c"]


class TooMany(Exception):
    status_code = 429
    headers = {"retry-after": "30"}


def test_a_paused_value_is_skipped_by_a_hedge() -> None:
    tried: list[str] = []

    @opero(hedge=0.1, arg_fallback="v", retries=0, cache=False)
    def f(v: list[str] = ["slow", "paused", "c"]) -> str:
        tried.append(v)
        if v == "paused":
            raise TooMany("wait 30 s")
        if v == "slow":
            time.sleep(1.2)
        return v

    with pytest.raises(AllFailedError):
        f(v=["paused"])  # the server asks callers of this value to wait 30 s
    tried.clear()
    start = time.monotonic()
    assert f() == "c"
    assert time.monotonic() - start < 0.9  # the hedge's answer, not the slow one
    assert tried == ["slow", "c"]
    assert f.stats().pauses == 1


async def test_async_hedge_and_cancelled_loser() -> None:
    cancelled = asyncio.Event()

    @opero(hedge=0.1, arg_fallback="v", cache=False)
    async def f(v: list[str] = ["slow", "fast"]) -> str:
        if v == "slow":
            try:
                await asyncio.sleep(SLOW)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return v

    start = time.monotonic()
    assert await f() == "fast"
    assert time.monotonic() - start < SLOW / 2
    await asyncio.wait_for(cancelled.wait(), 1.0)
    s = f.stats()
    assert (s.attempts, s.hedges, s.hedge_wins) == (2, 1, 1)


async def test_async_deadline_bounds_hedges() -> None:
    script = Script(*[(SLOW, "late")] * 5)

    @opero(hedge=0.15, deadline=0.5, cache=False)
    async def f() -> object:
        return await script.run_async()

    start = time.monotonic()
    with pytest.raises((DeadlineExceededError, TimeoutError)):
        await f()
    assert time.monotonic() - start < SLOW / 2
    assert len(script.started) <= 3


def slow_then_fast(i: int) -> int:
    time.sleep(0.6 if i == 0 else 0.0)
    return i


def test_process_maps_do_not_hedge() -> None:
    mapped = operomap(mode="process", workers=2, hedge=0.05, cache=False, progress=False)(
        slow_then_fast
    )
    assert mapped([0, 1]) == [0, 1]
    s = mapped.stats()
    assert (s.attempts, s.hedges) == (2, 0)


def test_abandoned_attempts_leave_no_thread_behind() -> None:
    before = threading.active_count()
    script = Script(*[(0.5, "slow"), (0.0, "fast")] * 40)

    @opero(hedge=0.02, cache=False)
    def f(n: int) -> object:
        return script.run(n)

    results = [f(n) for n in range(40)]  # each abandons its slow first attempt
    assert results.count("fast") >= 30
    assert f.stats().hedges >= 30
    assert threading.active_count() > before  # slow attempts still run
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before, [t.name for t in threading.enumerate()]


def test_a_hedged_single_value_counts_its_success_as_a_plain_call_does() -> None:
    """One fallback value given (not a list): a success counts as no fallback in play
    (``successes[None]``), hedged or not, so ``stats()`` agrees on both paths."""
    counts = {}
    for hedge in (None, 0.1):
        script = Script((0.4, "first"), (0.0, "hedge"))

        @opero(cache=False, arg_fallback="model", rate_limit={"*": 1000}, hedge=hedge)
        def f(x: int, model: str = "a") -> object:
            return script.run(model)

        f(1, model="a")
        counts[hedge] = f.stats().successes
    assert counts[None] == counts[0.1] == {None: 1}
