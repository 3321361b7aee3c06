"""Services and per-value budgets against a local server that enforces per-key and per-model
limits with 429s and records every arrival (real HTTP, real time, wide margins)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import opero
from opero import Service
from tests.limited_server import LimitedServer


@pytest.fixture
def server() -> Iterator[LimitedServer]:
    srv = LimitedServer(
        # 5/s clients; the server's rolling windows leave room for arrival jitter on a busy
        # machine (a client ignoring the limits sends 10 or more a second)
        key_limits={"k1": (8, 1.0), "k2": (8, 1.0), "k3": (8, 1.0)},
        retry_after=1.0,
    ).start()
    yield srv
    srv.stop()


def ask(url: str, key: str, model: str = "m") -> str:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": []},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


def most_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_all(*jobs: Callable[[], Any]) -> float:
    started = time.monotonic()
    threads = [threading.Thread(target=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return time.monotonic() - started


def test_two_functions_sharing_a_service_never_exceed_it(server: LimitedServer) -> None:
    service = Service("5/s")

    @opero.opero(rate_limit=service, cache=False, retries=0)
    def summarize(i: int) -> str:
        return ask(server.url, "k1")

    @opero.opero(rate_limit=service, cache=False, retries=0)
    def classify(i: int) -> str:
        return ask(server.url, "k1")

    wall = run_all(
        lambda: [summarize(i) for i in range(8)], lambda: [classify(i) for i in range(8)]
    )
    assert server.count(status=429) == 0
    times = server.times(key="k1")
    assert len(times) == 16
    assert most_in_window(times, 1.0) <= 7  # 5/s: ceil(5 x 1) + 1, and one of jitter
    assert wall >= 2.8  # 16 admissions 0.2 s apart: at least 3 s (not 1.5 s each alone)


def test_a_429_seen_by_one_function_pauses_the_other(server: LimitedServer) -> None:
    server.key_limits["k1"] = (1, 30.0)  # one request, then 429 with Retry-After: 1
    service = Service()

    @opero.opero(rate_limit=service, cache=False, retries=0)
    def first(i: int) -> str:
        return ask(server.url, "k1")

    @opero.opero(rate_limit=service, cache=False, retries=0)
    def second(i: int) -> str:
        return ask(server.url, "k1")

    first(0)
    with pytest.raises(httpx.HTTPStatusError):
        first(1)  # the server said: wait a second
    refused_at = server.times(status=429)[0]
    with pytest.raises(httpx.HTTPStatusError):
        second(0)
    waited = server.times(status=429)[1] - refused_at
    assert waited >= 0.85
    assert first.stats().pauses == 1
    assert second.stats().wait >= 0.85  # it waited for the pause the other one saw


def test_each_fallback_value_has_its_own_budget(server: LimitedServer) -> None:
    @opero.opero(rate_limit={"k1": "5/s", "k2": "5/s"}, arg_fallback="key", cache=False, retries=0)
    def call(i: int, key: str = "k1") -> str:
        return ask(server.url, key)

    wall = run_all(
        lambda: [call(i, key="k1") for i in range(8)],
        lambda: [call(i, key="k2") for i in range(8)],
    )
    assert server.count(status=429) == 0
    assert server.count(key="k1") == server.count(key="k2") == 8
    assert most_in_window(server.times(key="k1"), 1.0) <= 7
    assert 1.2 <= wall < 3.0  # paced separately: about 1.4 s, not 3 s for one shared budget


def test_the_star_entry_gives_each_value_not_listed_a_budget_of_its_own(
    server: LimitedServer,
) -> None:
    @opero.opero(rate_limit={"*": "5/s"}, arg_fallback="key", cache=False, retries=0)
    def call(i: int, key: str = "k1") -> str:
        return ask(server.url, key)

    wall = run_all(
        lambda: [call(i, key="k2") for i in range(8)],
        lambda: [call(i, key="k3") for i in range(8)],
    )
    assert server.count(status=429) == 0
    assert most_in_window(server.times(key="k3"), 1.0) <= 7
    assert wall < 3.0


def test_spread_over_three_keys_serves_three_times_one_key(server: LimitedServer) -> None:
    keys = ["k1", "k2", "k3"]

    @opero.operomap(
        mode="thread",
        workers=8,
        rate_limit=dict.fromkeys(keys, "5/s"),
        arg_fallback="key",
        fallback_strategy="spread",
        cache=False,
        progress=False,
    )
    def call(i: int, key: list[str] = keys) -> str:
        return ask(server.url, key)

    started = time.monotonic()
    results = call(range(45))
    wall = time.monotonic() - started
    assert len(results) == 45
    assert server.count(status=429) == 0
    assert all(12 <= server.count(key=k) <= 18 for k in keys)  # 15 each, give or take
    assert wall < 5.0  # about 3 s; one key alone paces 45 calls over 9 s


def test_order_mode_stays_on_the_first_key(server: LimitedServer) -> None:
    keys = ["k1", "k2", "k3"]

    @opero.opero(rate_limit=dict.fromkeys(keys, "50/s"), arg_fallback="key", cache=False)
    def call(i: int, key: list[str] = keys) -> str:
        return ask(server.url, key)

    for i in range(4):
        call(i)
    assert server.count(key="k1") == 4 and server.count(key="k2") == 0


def test_spread_moves_on_from_a_failing_value_like_order_mode(server: LimitedServer) -> None:
    server.key_limits["k1"] = (0, 1.0)  # k1 refuses everything
    seen: list[str] = []

    @opero.opero(
        rate_limit={"k1": "50/s", "k2": "50/s"},
        arg_fallback="key",
        fallback_strategy="spread",
        retries=0,
        cache=False,
        min_delay=0,
        max_delay=0.01,
    )
    def call(i: int, key: list[str] = ["k1", "k2"]) -> str:
        seen.append(key)
        return ask(server.url, key)

    assert call(0) == "hi from m"
    assert seen == ["k1", "k2"]  # both free: the given order first; then the next value
