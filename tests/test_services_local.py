"""Services and per-value budgets with an injected clock: options, sharing, breakers,
concurrency, async callers (no server needed)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import opero
from opero import CircuitOpenError, Limit, Service
from tests.conftest import FakeClock


# ----- options ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"backend": "redis"}, "needs name="),
        ({"backend": "disk"}, "'memory' or 'redis'"),
        ({"url": "redis://localhost"}, "url"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"concurrency": 0}, "concurrency"),
        ({"cooldown": -1}, "cooldown"),
        ({"cooldown_after": 2}, "without cooldown"),
        ({"rate_limit": [opero.Adaptive(), "5/s"]}, "stands alone"),
    ],
)
def test_a_bad_service_fails_at_construction(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises((ValueError, TypeError), match=words):
        Service(**kwargs)  # type: ignore[arg-type]


def fn(x: int, key: str = "a") -> int:
    return x


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"fallback_strategy": "spread"}, "fallback_strategy='spread' has no effect"),
        ({"rate_limit": {"a": "5/s"}}, "without arg_fallback"),
        ({"hedge_max": 2}, "hedge_max=2 has no effect without hedge"),
        ({"fallback_strategy": "random", "arg_fallback": "key"}, "fallback_strategy"),
        ({"cooldown": 5, "rate_limit": Service(cooldown=5)}, "cooldown"),
        ({"rate_limit_backend": "redis", "rate_limit": Service()}, "rate_limit_backend"),
        ({"rate_limit": {}, "arg_fallback": "key"}, "empty mapping"),
        ({"rate_limit": {"a": None}, "arg_fallback": "key"}, "leave the value out"),
        ({"rate_limit": {"a": {"b": 1}}, "arg_fallback": "key"}, "cannot be nested"),
    ],
)
def test_options_without_effect_fail_at_decoration(options: dict[str, object], words: str) -> None:
    with pytest.raises((ValueError, TypeError), match=words):
        opero.opero(**options)(fn)  # type: ignore[call-overload]


def test_on_breaker_is_accepted_with_a_service_that_has_a_cooldown() -> None:
    opero.opero(rate_limit=Service(cooldown=5), on_breaker=print)(fn)
    with pytest.raises(ValueError, match="on_breaker"):
        opero.opero(rate_limit=Service(), on_breaker=print)(fn)


# ----- sharing ------------------------------------------------------------------------------
def test_two_functions_share_one_schedule(clock: FakeClock) -> None:
    start = clock.now
    service = Service("2/s")
    one = opero.opero(rate_limit=service, cache=False)(lambda x: x)
    two = opero.opero(rate_limit=service, cache=False)(lambda x: -x)
    for i in range(3):
        one(i)
        two(i)
    assert clock.now - start == pytest.approx(2.5)  # six admissions 0.5 s apart


def test_a_service_breaker_opened_by_one_function_holds_back_the_other(clock: FakeClock) -> None:
    service = Service(cooldown=10, cooldown_after=2)
    told: list[object] = []

    @opero.opero(rate_limit=service, retries=0, cache=False, on_breaker=told.append)
    def failing(x: int) -> int:
        raise ConnectionError("down")

    @opero.opero(rate_limit=service, retries=0, cache=False)
    def other(x: int) -> int:
        return x

    for i in range(2):
        with pytest.raises(ConnectionError):
            failing(i)
    with pytest.raises(CircuitOpenError):
        other(1)
    assert len(told) == 1
    clock.advance(10.5)
    assert other(2) == 2  # the probe succeeds: closed for both


def test_service_concurrency_is_shared_by_its_functions() -> None:
    service = Service(concurrency=2)
    running = peak = 0
    lock = threading.Lock()

    def work(x: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return x

    one = opero.opero(rate_limit=service, cache=False)(work)
    two = opero.opero(rate_limit=service, cache=False, concurrency=5)(work)
    threads = [threading.Thread(target=f, args=(i,)) for i in range(6) for f in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2


def test_a_per_value_service_is_shared_with_a_function_using_it_whole(clock: FakeClock) -> None:
    big = Service("1/s")

    @opero.opero(rate_limit={"big": big, "small": "10/s"}, arg_fallback="model", cache=False)
    def ask(x: int, model: str = "big") -> str:
        return model

    start = clock.now
    direct = opero.opero(rate_limit=big, cache=False)(lambda x: x)
    direct(0)
    assert ask(1) == "big"
    assert clock.now - start == pytest.approx(1.0)  # the service's schedule, shared
    assert ask(2, model="small") == "small"
    assert clock.now - start == pytest.approx(1.0)


def test_spread_prefers_the_value_admitted_soonest(clock: FakeClock) -> None:
    @opero.opero(
        rate_limit={"big": "1/s", "small": "4/s"},
        arg_fallback="model",
        fallback_strategy="spread",
        cache=False,
    )
    def ask(x: int, model: list[str] = ["big", "small"]) -> str:
        return model  # type: ignore[return-value]

    start = clock.now
    used = [ask(i) for i in range(6)]
    assert used[0] == "big"  # ties: the given order
    assert used.count("big") == 2 and clock.now - start < 1.01  # big once a second, small meanwhile


def test_cost_is_per_value_in_a_mapping(clock: FakeClock) -> None:
    tokens = Limit("100/s", cost=lambda x, model="a": x)

    @opero.opero(rate_limit={"a": [tokens], "b": "100/s"}, arg_fallback="model", cache=False)
    def ask(x: int, model: str = "a") -> str:
        return model

    start = clock.now
    ask(50)
    ask(50)
    assert clock.now - start == pytest.approx(0.5)
    ask(50, model="b")
    assert clock.now - start == pytest.approx(0.5)


def test_async_callers_share_a_service(clock: FakeClock) -> None:
    service = Service("2/s", concurrency=1)

    @opero.opero(rate_limit=service, cache=False)
    async def one(x: int) -> int:
        return x

    @opero.opero(rate_limit={"k": service}, arg_fallback="key", cache=False)
    async def two(x: int, key: str = "k") -> int:
        return -x

    async def main() -> list[int]:
        return list(await asyncio.gather(*(f(i) for i in range(2) for f in (one, two))))

    start = clock.now
    assert sorted(asyncio.run(main())) == [-1, 0, 0, 1]
    assert clock.now - start == pytest.approx(1.5)


def test_values_not_listed_and_no_star_are_unlimited(clock: FakeClock) -> None:
    @opero.opero(rate_limit={"a": "1/s"}, arg_fallback="model", cache=False)
    def ask(x: int, model: str = "a") -> str:
        return model

    start = clock.now
    for i in range(5):
        ask(i, model="other")
    assert clock.now == start


class Throttled(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"retry after {seconds}")
        self.retry_after = seconds


def test_spread_skips_a_paused_value_while_another_can_start(clock: FakeClock) -> None:
    calls: list[str] = []

    @opero.opero(
        rate_limit={"k1": "100/s", "k2": "1/s"},
        arg_fallback="key",
        fallback_strategy="spread",
        cache=False,
        retries=0,
    )
    def ask(x: int, key: list[str] = ["k1", "k2"]) -> str:
        calls.append(key)  # type: ignore[arg-type]
        if key == "k1" and x == 0:
            raise Throttled(30)
        return key  # type: ignore[return-value]

    assert ask(0) == "k2"  # k1 throttled: the server paused it for 30 s
    assert ask(1) == "k2"  # k2 waits a second for its admission; k1 is paused for longer
    assert calls == ["k1", "k2", "k2"]
    clock.advance(30)
    assert ask(2) == "k1"


def test_spread_in_async_callers(clock: FakeClock) -> None:
    @opero.opero(
        rate_limit={"big": "1/s", "small": "4/s"},
        arg_fallback="model",
        fallback_strategy="spread",
        cache=False,
    )
    async def ask(x: int, model: list[str] = ["big", "small"]) -> str:
        return model  # type: ignore[return-value]

    async def main() -> list[str]:
        return [await ask(i) for i in range(6)]

    start = clock.now
    used = asyncio.run(main())
    assert used.count("big") == 2 and clock.now - start < 1.01


def test_a_per_value_service_breaker_tells_on_breaker(clock: FakeClock) -> None:
    told: list[object] = []
    flaky = Service(cooldown=10, cooldown_after=1)

    @opero.opero(
        rate_limit={"a": flaky},
        arg_fallback="key",
        retries=0,
        cache=False,
        on_breaker=told.append,
    )
    def ask(x: int, key: list[str] = ["a", "b"]) -> str:
        if key == "a":
            raise ConnectionError("a is down")
        return key  # type: ignore[return-value]

    assert ask(0) == "b"
    assert len(told) == 1
    assert ask(1) == "b"
    assert ask.stats().attempts == 3  # the open value is skipped
