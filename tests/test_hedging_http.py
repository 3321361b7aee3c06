"""Hedged attempts against a local HTTP server with scripted latency: a slow request gets a
second one alongside after ``hedge`` seconds (on the next fallback value, or the same one),
the first answer wins, the loser is dropped (cancelled in async code: the server sees the
connection closed). Real time, with wide margins for a busy machine."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import httpx
import pytest

from opero import opero, operomap
from tests.latency_server import LatencyServer

SLOW = 3.0  #: a slow answer; a hedged call must return in well under half of it
FAST = 0.02


@pytest.fixture
def server() -> Iterator[LatencyServer]:
    s = LatencyServer().start()
    yield s
    s.stop()


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_sync_hedge_goes_to_the_next_fallback_value(server: LatencyServer) -> None:
    server.defaults["/slow"] = SLOW
    server.defaults["/fast"] = FAST

    @opero(hedge=0.2, arg_fallback="path", cache=False)
    def fetch(path: list[str] = ["/slow", "/fast"]) -> str:
        return get(server.url + path)

    start = time.monotonic()
    assert fetch() == '{"path": "/fast"}'
    took = time.monotonic() - start
    assert 0.2 <= took < SLOW / 2, took
    first, second = server.seen()
    assert (first.path, second.path) == ("/slow", "/fast")
    # due 0.2 s after the first attempt started (its request reached the server a little later)
    assert second.arrived - first.arrived >= 0.15
    s = fetch.stats()
    assert (s.attempts, s.hedges, s.hedge_wins, s.failures) == (2, 1, 1, 0)
    assert dict(s.successes) == {"'/fast'": 1}


def test_sync_hedge_on_the_same_value_without_fallback(server: LatencyServer) -> None:
    server.script("/a", SLOW, FAST)

    @opero(hedge=0.15, cache=False)
    def fetch() -> str:
        return get(server.url + "/a")

    start = time.monotonic()
    assert fetch() == '{"path": "/a"}'
    assert time.monotonic() - start < SLOW / 2
    assert server.count("/a") == 2
    s = fetch.stats()
    assert (s.calls, s.attempts, s.hedges, s.hedge_wins) == (1, 2, 1, 1)


def test_the_first_attempt_may_still_win(server: LatencyServer) -> None:
    server.script("/a", 0.4, SLOW)

    @opero(hedge=0.1, cache=False)
    def fetch() -> str:
        return get(server.url + "/a")

    start = time.monotonic()
    fetch()
    assert time.monotonic() - start < SLOW / 2
    s = fetch.stats()
    assert (s.attempts, s.hedges, s.hedge_wins) == (2, 1, 0)


def test_no_hedge_before_its_time(server: LatencyServer) -> None:
    server.defaults["/a"] = FAST

    @opero(hedge=1.0, cache=False)
    def fetch() -> str:
        return get(server.url + "/a")

    for _ in range(5):
        fetch()
    assert server.count() == 5
    assert fetch.stats().hedges == 0


def test_a_saturated_rate_limit_starts_no_hedge(server: LatencyServer) -> None:
    server.script("/a", 1.0, FAST)

    @opero(hedge=0.1, rate_limit="1/minute", cache=False)
    def fetch() -> str:
        return get(server.url + "/a")

    start = time.monotonic()
    fetch()
    assert time.monotonic() - start >= 0.9  # no hedge: the slow answer was awaited
    assert server.count() == 1
    s = fetch.stats()
    assert (s.attempts, s.hedges) == (1, 0)


def test_a_hedge_skips_a_value_whose_rate_limit_is_saturated(server: LatencyServer) -> None:
    server.defaults["/slow"] = SLOW
    server.defaults["/b"] = FAST
    server.defaults["/c"] = FAST

    @opero(
        hedge=0.15,
        arg_fallback="path",
        rate_limit={"/b": "1/minute", "*": 100},
        cache=False,
    )
    def fetch(path: list[str] = ["/slow", "/b", "/c"]) -> str:
        return get(server.url + path)

    assert fetch(path=["/b"]) == '{"path": "/b"}'  # /b's one admission a minute is used
    start = time.monotonic()
    assert fetch() == '{"path": "/c"}'
    assert time.monotonic() - start < SLOW / 2
    assert [r.path for r in server.seen()] == ["/b", "/slow", "/c"]


async def test_async_loser_is_cancelled(server: LatencyServer) -> None:
    server.defaults["/slow"] = SLOW
    server.defaults["/fast"] = FAST
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

        @opero(hedge=0.2, arg_fallback="path", cache=False)
        async def fetch(path: list[str] = ["/slow", "/fast"]) -> str:
            response = await client.get(path)
            response.raise_for_status()
            return response.text

        start = time.monotonic()
        assert await fetch() == '{"path": "/fast"}'
        took = time.monotonic() - start
        assert 0.2 <= took < SLOW / 2, took
        deadline = time.monotonic() + SLOW / 2
        slow = server.seen("/slow")[0]
        while slow.ended is None and time.monotonic() < deadline:
            await _pause(0.02)
        assert slow.closed, "the losing request was not cancelled"
        assert slow.ended is not None and slow.ended - slow.arrived < SLOW / 2
    s = fetch.stats()
    assert (s.attempts, s.hedges, s.hedge_wins) == (2, 1, 1)


async def test_async_same_value_first_wins_and_the_hedge_is_cancelled(
    server: LatencyServer,
) -> None:
    server.script("/a", 0.5, SLOW)
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

        @opero(hedge=0.1, cache=False)
        async def fetch() -> str:
            return (await client.get("/a")).text

        start = time.monotonic()
        await fetch()
        assert time.monotonic() - start < SLOW / 2
        hedge = server.seen("/a")[1]
        deadline = time.monotonic() + SLOW / 2
        while hedge.ended is None and time.monotonic() < deadline:
            await _pause(0.02)
        assert hedge.closed
    s = fetch.stats()
    assert (s.attempts, s.hedges, s.hedge_wins) == (2, 1, 0)


def test_thread_map_hedges_a_slow_item(server: LatencyServer) -> None:
    server.script("/item/0", SLOW)  # its first request is slow, the next ones are fast
    server.latency = lambda path: FAST

    # (hedge=0.5: a 20 ms item is not slow even on a busy machine under coverage)
    @operomap(mode="thread", workers=4, hedge=0.5, cache=False, progress=False)
    def fetch(i: int) -> str:
        return get(f"{server.url}/item/{i}")

    start = time.monotonic()
    assert fetch(range(3)) == [f'{{"path": "/item/{i}"}}' for i in range(3)]
    assert time.monotonic() - start < SLOW / 2
    assert server.count("/item/0") == 2
    s = fetch.stats()
    assert (s.calls, s.hedges, s.hedge_wins) == (3, 1, 1)


def test_thread_map_without_a_free_worker_skips_the_hedge(server: LatencyServer) -> None:
    server.script("/item/0", 1.0)
    server.latency = lambda path: FAST

    @operomap(mode="thread", workers=1, hedge=0.1, cache=False, progress=False)
    def fetch(i: int) -> str:
        return get(f"{server.url}/item/{i}")

    start = time.monotonic()
    fetch([0])
    assert time.monotonic() - start >= 0.9
    assert server.count("/item/0") == 1
    assert fetch.stats().hedges == 0


async def test_async_map_hedges_on_the_next_value(server: LatencyServer) -> None:
    server.defaults["/slow"] = SLOW
    server.latency = lambda path: FAST
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

        @operomap(
            mode="async", workers=4, hedge=0.2, arg_fallback="host", cache=False, progress=False
        )
        async def fetch(i: int, host: list[str] = ["/slow", "/fast"]) -> str:
            return (await client.get(f"{host}/{i}" if host != "/slow" else "/slow")).text

        start = time.monotonic()
        got = await fetch(range(2))
        assert time.monotonic() - start < SLOW / 2
        assert got == ['{"path": "/fast/0"}', '{"path": "/fast/1"}']
        deadline = time.monotonic() + SLOW / 2
        while any(r.ended is None for r in server.seen("/slow")) and time.monotonic() < deadline:
            await _pause(0.02)
        assert [r.closed for r in server.seen("/slow")] == [True, True]
    s = fetch.stats()
    assert (s.calls, s.attempts, s.hedges, s.hedge_wins) == (2, 4, 2, 2)


async def _pause(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
