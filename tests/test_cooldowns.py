"""``cooldown``/``cooldown_after``: a circuit breaker per fallback value (per function
without fallback), open after consecutive failures, half-open after the cooldown."""

from __future__ import annotations

from typing import Any

import pytest

from opero import AllFailedError, CircuitOpenError, OperoError, opero, operomap


def test_opens_after_consecutive_failures_across_calls(clock: Any) -> None:
    calls: list[int] = []
    down = True

    @opero(cache=False, retries=0, cooldown=30, cooldown_after=3)
    def f(x: int) -> int:
        calls.append(x)
        if down:
            raise ConnectionError("down")
        return x

    for x in range(3):
        with pytest.raises(ConnectionError):
            f(x)
    with pytest.raises(CircuitOpenError) as info:
        f(9)  # open: not called
    assert isinstance(info.value, OperoError)
    assert calls == [0, 1, 2]
    assert info.value.back_in[None] == pytest.approx(30)
    assert "back in 30.0s" in str(info.value)
    assert f.stats().cooldowns == 1

    clock.advance(30)
    down = False
    assert f(5) == 5  # half-open probe succeeds: closed
    assert f(6) == 6 and calls == [0, 1, 2, 5, 6]


def test_a_failed_probe_opens_again(clock: Any) -> None:
    calls = 0

    @opero(cache=False, retries=0, cooldown=10, cooldown_after=2)
    def f() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            f()
    clock.advance(10)
    with pytest.raises(ConnectionError):
        f()  # the probe
    with pytest.raises(CircuitOpenError):
        f()  # open again for 10 s
    assert calls == 3 and f.stats().cooldowns == 2


def test_success_resets_the_count(clock: Any) -> None:
    outcomes = iter([False, False, True, False, False, True])

    @opero(cache=False, retries=0, cooldown=10, cooldown_after=3)
    def f() -> str:
        if not next(outcomes):
            raise ConnectionError("down")
        return "ok"

    results = []
    for _ in range(6):
        try:
            results.append(f())
        except ConnectionError:
            results.append("err")
    assert results == ["err", "err", "ok", "err", "err", "ok"]  # never three in a row


def test_an_open_value_is_skipped_and_the_others_answer(clock: Any) -> None:
    tried: list[str] = []

    @opero(cache=False, retries=0, arg_fallback="model", cooldown=60, cooldown_after=2)
    def ask(q: str, model: Any = ("big", "small")) -> str:
        tried.append(model)
        if model == "big":
            raise ConnectionError("big is down")
        return f"{q}@{model}"

    assert ask("a") == "a@small"
    assert ask("b") == "b@small"  # big fails a second time: open
    tried.clear()
    assert ask("c") == "c@small"
    assert tried == ["small"]  # big skipped: no attempt


def test_every_value_open_fails_at_once_naming_them(clock: Any) -> None:
    @opero(cache=False, retries=0, arg_fallback="model", cooldown=60, cooldown_after=1)
    def ask(q: str, model: Any = ("big", "small")) -> str:
        raise ConnectionError(f"{model} is down")

    with pytest.raises(AllFailedError):
        ask("a")  # both fail once: both open
    clock.advance(5)
    with pytest.raises(CircuitOpenError) as info:
        ask("b")
    assert set(info.value.back_in) == {"'big'", "'small'"}
    assert all(s == pytest.approx(55) for s in info.value.back_in.values())


def test_a_value_opening_during_a_call_is_skipped_for_the_rest_of_it(clock: Any) -> None:
    tried: list[str] = []

    @opero(cache=False, retries=2, min_delay=1, arg_fallback="model", cooldown=60, cooldown_after=1)
    def ask(q: str, model: Any = ("big", "small")) -> str:
        tried.append(model)
        if model == "big" or len(tried) < 3:
            raise ConnectionError(f"{model} is down")
        return f"{q}@{model}"

    with pytest.raises(AllFailedError) as info:
        ask("a")  # big and small both fail once, then both are open: the call ends
    assert tried == ["big", "small"]
    assert len(info.value.exceptions) == 2


def test_cooldown_after_needs_cooldown() -> None:
    with pytest.raises(ValueError, match="cooldown_after"):
        opero(cooldown_after=2)(lambda: None)


def test_in_a_map_an_open_breaker_is_the_items_failure(clock: Any) -> None:
    def g(x: int) -> int:
        raise ConnectionError("down")

    mapped = operomap(
        mode="thread",
        workers=1,
        cache=False,
        retries=0,
        cooldown=60,
        cooldown_after=2,
        progress=False,
        return_exceptions=True,
    )(g)
    out = mapped(range(5))
    assert [type(e).__name__ for e in out[:2]] == ["ConnectionError", "ConnectionError"]
    assert all(isinstance(e, CircuitOpenError) for e in out[2:])


async def test_async_callers(clock: Any) -> None:
    @opero(cache=False, retries=0, cooldown=5, cooldown_after=1)
    async def f() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await f()
    with pytest.raises(CircuitOpenError):
        await f()


# ----- only the half-open probe closes an open breaker ------------------------------------------


def test_a_success_that_started_before_the_breaker_opened_does_not_close_it(clock: Any) -> None:
    """Under concurrency: a request in flight when the breaker opens succeeds afterwards; the
    value stays open (the first build tried gpt-big again half a second after opening)."""
    import threading

    release = threading.Event()
    entered = threading.Event()
    calls: list[str] = []

    @opero(cache=False, retries=0, cooldown=30, cooldown_after=3)
    def f(how: str) -> str:
        calls.append(how)
        if how == "slow":
            entered.set()
            release.wait(10)
        elif how == "fail":
            raise ConnectionError("down")
        return how

    slow = threading.Thread(target=f, args=("slow",))
    slow.start()
    assert entered.wait(10)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            f("fail")
    release.set()  # the old request succeeds after the breaker opened
    slow.join(10)
    clock.advance(0.5)
    with pytest.raises(CircuitOpenError):
        f("ok")  # still open: not called
    assert calls == ["slow", "fail", "fail", "fail"]
    clock.advance(30)
    assert f("ok") == "ok"  # the probe closes it
    assert f("ok") == "ok"


def _breakers(cooldown: float = 10, after: int = 3) -> Any:
    from opero.core.breaker import Breakers
    from opero.core.stats import Counters

    return Breakers(cooldown, after, Counters())


def test_breakers_without_tickets_ignore_successes_while_open(clock: Any) -> None:
    b = _breakers()
    assert b.allows("gpt-big")  # an attempt starts while closed
    for _ in range(3):
        b.failed("gpt-big")
    b.succeeded("gpt-big")  # that attempt ends well, after the opening
    assert not b.allows("gpt-big")
    assert b.back_in("gpt-big") == pytest.approx(10)
    clock.advance(10)
    assert b.allows("gpt-big")  # the probe
    assert not b.allows("gpt-big")  # only one
    b.succeeded("gpt-big")
    assert b.back_in("gpt-big") == 0.0 and b.allows("gpt-big")


def test_tickets_tell_the_probe_from_attempts_in_flight(clock: Any) -> None:
    b = _breakers()
    old = b.admit("k")  # started while closed
    assert old is not None and not old.probe
    for _ in range(3):
        b.failed("k")
    clock.advance(10)
    probe = b.admit("k")
    assert probe is not None and probe.probe
    assert b.admit("k") is None  # one probe at a time
    b.succeeded("k", old)  # an attempt from before the opening: the probe still decides
    b.failed("k", old)  # nor does its failure reopen it or free the probe
    b.release("k", old)
    assert b.admit("k") is None and b.back_in("k") == 0.0
    b.succeeded("k", probe)  # the probe closes it
    fresh = b.admit("k")
    assert fresh is not None and not fresh.probe
    b.failed("k", fresh)
    b.failed("k", fresh)
    b.succeeded("k", old)  # a success from before the last opening resets nothing
    b.failed("k", fresh)
    assert b.admit("k") is None  # three in a row since it closed: open again
    assert b.back_in("k") == pytest.approx(10)


def test_a_failed_probe_reopens_and_an_old_failure_does_not_extend(clock: Any) -> None:
    b = _breakers()
    old = b.admit("k")
    for _ in range(3):
        b.failed("k")
    clock.advance(4)
    b.failed("k", old)  # an old attempt failing later does not move the cooldown
    assert b.back_in("k") == pytest.approx(6)
    clock.advance(6)
    probe = b.admit("k")
    b.failed("k", probe)
    assert b.back_in("k") == pytest.approx(10)
    assert b.counters.cooldowns == 2


def test_an_old_success_during_the_probe_does_not_close_the_breaker() -> None:
    """Only the half-open probe closes an open breaker: a request that started before the
    breaker opened and succeeds while the probe is still running leaves it half-open, so
    a new call is still refused until the probe itself ends."""
    import threading
    import time

    from opero import CircuitOpenError

    release_old, release_probe = threading.Event(), threading.Event()
    old_started, probe_started = threading.Event(), threading.Event()

    @opero(cache=False, retries=0, cooldown=0.2, cooldown_after=1)
    def call(kind: str) -> str:
        if kind == "old":
            old_started.set()
            release_old.wait(10)
            return "old"
        if kind == "fail":
            raise ValueError("down")
        probe_started.set()
        release_probe.wait(10)
        return "probe"

    results: dict[str, object] = {}
    old = threading.Thread(target=lambda: results.setdefault("old", call("old")))
    old.start()
    assert old_started.wait(10)
    with pytest.raises(ValueError):
        call("fail")  # opens the breaker
    time.sleep(0.3)  # the cooldown ends: the next attempt is the half-open probe
    probe = threading.Thread(target=lambda: results.setdefault("probe", call("probe")))
    probe.start()
    assert probe_started.wait(10)
    release_old.set()
    old.join(10)
    assert results["old"] == "old"
    with pytest.raises(CircuitOpenError):
        call("anything")  # the probe still runs: the old success did not close the breaker
    release_probe.set()
    probe.join(10)
    assert results["probe"] == "probe"
    assert call("old") == "old"  # the probe's success closed it: calls go through again


def test_a_cancelled_probe_is_given_back_even_when_retry_on_names_base_exception() -> None:
    """``retry_on=BaseException``: a half-open probe ended by KeyboardInterrupt is still given
    back (cancellation is never retried), so the next call may probe."""
    import time

    state = {"mode": "fail"}

    @opero(cache=False, retries=0, cooldown=0.1, cooldown_after=1, retry_on=BaseException)
    def call() -> str:
        if state["mode"] == "fail":
            raise ValueError("down")
        if state["mode"] == "interrupt":
            raise KeyboardInterrupt
        return "up"

    with pytest.raises(ValueError):
        call()  # opens the breaker
    time.sleep(0.2)
    state["mode"] = "interrupt"
    with pytest.raises(KeyboardInterrupt):
        call()  # the half-open probe, interrupted
    state["mode"] = "ok"
    assert call() == "up"  # the probe was given back: this call probes and closes it
