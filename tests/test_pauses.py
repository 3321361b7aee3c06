"""Shared pauses: a server-directed delay pauses its value (or the function) for every caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from opero import AllFailedError, opero, operomap
from tests import sdk_clients as sdk
from tests.http_server import CHAT, ScriptedServer, error_body


class SlowDown(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"slow down {seconds}")
        self.retry_after = seconds


def test_a_pause_holds_back_the_next_caller(clock: Any) -> None:
    calls: list[float] = []

    @opero(cache=False, retries=0)
    def f(x: int) -> int:
        calls.append(clock.now)
        if len(calls) == 1:
            raise SlowDown(5)
        return x

    t0 = clock.now
    with pytest.raises(SlowDown):
        f(1)  # no retry, but the pause is set for every caller
    assert f(2) == 2
    assert clock.sleeps == [5]  # the second caller waited for the pause to end
    assert [t - t0 for t in calls] == [0, 5]
    assert f.stats().pauses == 1 and f.stats().wait == pytest.approx(5)
    assert f(3) == 3 and clock.sleeps == [5]  # over: no more waiting


def test_pause_is_capped_at_max_delay(clock: Any) -> None:
    seen: list[int] = []

    @opero(cache=False, retries=0, max_delay=2)
    def f(x: int) -> int:
        seen.append(x)
        if len(seen) == 1:
            raise SlowDown(60)
        return x

    with pytest.raises(SlowDown):
        f(1)
    f(2)
    assert clock.sleeps == [2]


def test_a_paused_value_is_skipped_while_another_can_start(clock: Any) -> None:
    tried: list[str] = []

    @opero(cache=False, retries=0, arg_fallback="model")
    def ask(q: str, model: Any = ("a", "b")) -> str:
        tried.append(model)
        if model == "a" and tried.count("a") == 1:
            raise SlowDown(10)
        return f"{q}@{model}"

    assert ask("one") == "one@b"  # a failed (paused for 10 s), b answered
    assert ask("two") == "two@b"  # a is paused: skipped, no attempt made
    assert tried == ["a", "b", "b"] and clock.sleeps == []
    clock.advance(10)
    assert ask("three") == "three@a"  # the pause is over
    assert ask.stats().pauses == 1


def test_a_call_whose_values_are_all_paused_waits_for_the_earliest(clock: Any) -> None:
    tried: list[str] = []

    @opero(cache=False, retries=0, arg_fallback="model")
    def ask(q: str, model: Any = ("a", "b")) -> str:
        tried.append(model)
        if len(tried) <= 2:
            raise SlowDown(7 if model == "a" else 3)
        return f"{q}@{model}"

    with pytest.raises(AllFailedError):
        ask("one")
    assert ask("two") == "two@b"  # b's pause (3 s) ends first
    assert clock.sleeps == [3] and tried == ["a", "b", "b"]


async def test_async_callers_wait_too(clock: Any) -> None:
    calls = 0

    @opero(cache=False, retries=0)
    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise SlowDown(4)
        return x

    with pytest.raises(SlowDown):
        await f(1)
    assert await f(2) == 2
    assert clock.sleeps == [4]


def test_eight_threads_share_one_pause() -> None:
    failed_at: list[float] = []
    starts: list[float] = []
    lock = threading.Lock()
    first = threading.Event()

    @opero(cache=False, retries=1, min_delay=0)
    def f(x: int) -> int:
        with lock:
            now = time.monotonic()
            if not failed_at:
                failed_at.append(now)
                first.set()
                raise SlowDown(0.6)
            starts.append(now)
        return x

    def worker(x: int) -> None:
        if x:
            first.wait(5)
        f(x)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(starts) == 8  # seven callers and the retry of the first
    assert min(starts) >= failed_at[0] + 0.6 - 0.02  # nobody started during the pause


# ----- maps, with a real HTTP server -----------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    running = ScriptedServer().start()
    yield running
    running.stop()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["thread", "async", "process"])
def test_a_429_on_one_item_holds_back_every_worker(server: ScriptedServer, mode: str) -> None:
    import httpx  # loaded before the workers fork: an attempt's request leaves at once

    assert httpx.__name__ == "httpx"
    server.reset()
    path = "/v1/chat/completions"
    server.script(path, (429, {"Retry-After": "1"}, error_body(429)))
    mapped = operomap(mode=mode, workers=4, cache=False, progress=False, retries=2)(sdk.httpx_post)
    assert mapped([server.url] * 40) == ["hi"] * 40
    times = [t for t, _, _ in server.requests]
    limited = times[0]  # the first request got the 429
    during = [round(t - limited, 3) for t in times[1:] if t - limited < 0.95]
    # Counted, not timed (a busy machine delays when in-flight requests land): requests
    # already handed to a worker when the 429 came back may still go out (at most one per
    # other worker, and one more queued behind it); without the pause all 39 others would.
    assert len(during) <= 2 * 4, during
    assert mapped.stats().pauses == 1
    assert len(times) == 41


def test_chat_body_is_openai_shaped() -> None:
    assert CHAT["choices"][0]["message"]["content"] == "hi"


@pytest.mark.timeout(120)
def test_a_pause_that_grows_while_callers_wait_is_waited_out_in_full() -> None:
    """The server of benchmark case P17 (docs/performance.md): 10 requests per rolling second,
    and every 429 restarts a 1 s penalty. Callers that went to sleep on the first 429's pause
    must wake for the last one's, or they restart the penalty forever (the first build never
    finished)."""
    from benchmarks.http_cases import _serve, fetch

    server, state = _serve()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        mapped = operomap(mode="thread", workers=8, cache=False, retries=10, progress=False)(fetch)
        start = time.monotonic()
        assert mapped([url] * 30) == [True] * 30
        took = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    assert took < 8, took  # ideal: 3 s
    assert state.limited <= 30, state.limited


@pytest.mark.timeout(120)
def test_map_endings_leave_no_pause_listener_behind() -> None:
    from tests.map_helpers import square

    mapped = operomap(mode="process", workers=2, cache=False, progress=False)(square)
    listeners = mapped.__opero_judge__.pauses.listeners  # type: ignore[attr-defined]
    for _ in range(5):
        assert mapped(range(20)) == [x * x for x in range(20)]
        for _ in mapped.iter(range(1000)):
            break
    assert listeners == []
