"""Call policies against a real local HTTP server that records what arrives and when: a
deadline is never crossed (backoff, rate-limit slots, a slow server, nested calls), and a
retry budget bounds what a down server receives from many callers."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import opero
from opero import DeadlineExceededError, RetryBudget
from tests.http_server import ScriptedServer

SLACK = 0.05  #: a request may be on the wire this long after the call decided to make it
LATE = 0.1  #: how much later than its deadline a call may end on a busy machine


@pytest.fixture(scope="module")
def down() -> Iterator[ScriptedServer]:
    """A server that answers every request with 503."""
    running = ScriptedServer().start()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _always_503(down: ScriptedServer) -> Iterator[None]:
    down.reset()
    down.decide = lambda path, body: (503, {}, None)
    yield
    down.reset()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def arrivals(server: ScriptedServer) -> list[float]:
    with server.lock:
        return sorted(t for t, _, _ in server.requests)


# ----- (a) a deadline is never crossed ----------------------------------------------------------


def test_backoff_stops_before_the_deadline(down: ScriptedServer) -> None:
    f = opero.opero(cache=False, deadline=1.0, retries=20, min_delay=0.3, jitter=False)(get)
    start = time.time()
    with pytest.raises(DeadlineExceededError) as info:
        f(down.url + "/x")
    ended = time.time() - start
    times = [t - start for t in arrivals(down)]
    assert times and max(times) <= 1.0 + SLACK
    assert ended <= 1.0 + LATE
    # the backoff schedule (factor 1.5): waits of 0.3, 0.45, 0.675 s: requests at about
    # 0, 0.3 and 0.75 s; the next would start at 1.425 s, after the deadline, so it is not
    # waited for: the call ends at once after the third request
    delays = [0.3 * 1.5**k for k in range(20)]
    for k, (a, b) in enumerate(zip(times, times[1:], strict=False)):
        assert b - a >= delays[k] - 0.01, (k, times)
    assert times[-1] + delays[len(times) - 1] >= 1.0, times  # the next one would not fit
    assert len(times) == 3, times
    assert ended < times[-1] + 0.2  # it did not sleep towards the deadline
    assert isinstance(info.value.__cause__, urllib.error.HTTPError)
    assert len(info.value.attempts) == len(times)
    assert f.stats().deadlines == 1


def test_rate_limit_slots_after_the_deadline_are_not_taken(down: ScriptedServer) -> None:
    # 90/minute: one admission every 0.667 s, retries without delay
    f = opero.opero(cache=False, deadline=1.0, retries=20, min_delay=0, rate_limit="90/minute")(get)
    start = time.time()
    with pytest.raises(DeadlineExceededError):
        f(down.url + "/r")
    ended = time.time() - start
    times = [t - start for t in arrivals(down)]
    assert len(times) == 2, times  # at 0 and 0.667; the slot at 1.333 is after the deadline
    assert max(times) <= 1.0 + SLACK
    assert ended < 0.667 + 0.2  # ends as soon as the next slot is known to be too late
    # the refused slot was given back: a second call, made now, is admitted at 1.333 s
    # (the slot after the last one used), not one slot later
    again = time.time()
    with pytest.raises(DeadlineExceededError):
        f(down.url + "/r")
    second = [t - start for t in arrivals(down)][2:]
    assert len(second) == 1, second
    assert 1.333 - 0.05 <= second[0] <= 1.333 + SLACK + 0.05, second
    assert second[0] <= again - start + 1.0 + SLACK


class _Slow:
    """A server that answers 200 after ``seconds``; records arrival times."""

    def __init__(self, seconds: float) -> None:
        self.times: list[float] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.times.append(time.time())
                time.sleep(seconds)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/slow"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def slow() -> Iterator[_Slow]:
    server = _Slow(2.0)
    yield server
    server.stop()


def test_a_slow_server_is_cut_at_the_deadline_sync(slow: _Slow) -> None:
    f = opero.opero(cache=False, deadline=0.5, retries=5, min_delay=0.01)(get)
    before = {t.ident for t in threading.enumerate()}
    start = time.time()
    with pytest.raises(DeadlineExceededError) as info:
        f(slow.url)
    assert time.time() - start <= 0.5 + LATE
    assert len(slow.times) == 1  # no retry: nothing was left of the budget
    assert isinstance(info.value.__cause__, TimeoutError)
    # the attempt was abandoned on its helper thread, which still waits for the server
    helpers = [t for t in threading.enumerate() if t.ident not in before]
    assert any(t.name.startswith("opero-timeout") and t.is_alive() for t in helpers)


def test_a_slow_server_is_cut_at_the_deadline_async(slow: _Slow) -> None:
    pool = ThreadPoolExecutor(1)  # urllib off the loop; never waited for

    async def aget(url: str) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(pool, get, url)

    f = opero.opero(cache=False, deadline=0.5, retries=5, min_delay=0.01)(aget)

    async def main() -> float:
        start = time.time()
        with pytest.raises(DeadlineExceededError) as info:
            await f(slow.url)
        assert isinstance(info.value.__cause__, TimeoutError)
        return time.time() - start

    try:
        assert asyncio.run(main()) <= 0.5 + LATE
    finally:
        pool.shutdown(wait=False)
    assert len(slow.times) == 1


# ----- (b) a retry budget bounds what a down server receives -------------------------------------


def _hammer(down: ScriptedServer, **options: Any) -> tuple[int, Any]:
    f = opero.opero(cache=False, retries=3, min_delay=0, **options)(get)
    url = down.url + "/down"
    errors: list[BaseException] = []

    def one(_: int) -> None:
        try:
            f(url)
        except urllib.error.HTTPError as exc:
            errors.append(exc)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(200)))
    assert len(errors) == 200  # every call failed with the server's own error
    return down.count("/down"), f.stats()


def test_retry_budget_bounds_the_requests_of_many_callers(down: ScriptedServer) -> None:
    budget = RetryBudget(ratio=0.2, minimum=1, window=10)
    with_budget, stats = _hammer(down, retry_budget=budget)
    down.reset()
    down.decide = lambda path, body: (503, {}, None)
    without, _ = _hammer(down)
    assert without == 4 * 200
    assert 200 <= with_budget <= 200 * 1.2 + 1 * 10 + 2
    assert stats.budget_refusals >= 200 - (with_budget - 200)
    assert stats.failures == with_budget


# ----- (c) a deadline passes to the calls made inside ------------------------------------------


def _nested(down: ScriptedServer, outer: Any, inner: Any) -> tuple[float, list[float], list[float]]:
    inner_ended: list[float] = []

    def body(url: str) -> bytes:
        try:
            return bytes(inner(url))
        except DeadlineExceededError:
            inner_ended.append(time.time())
            raise

    wrapped = outer(body)
    start = time.time()
    with pytest.raises(DeadlineExceededError):
        wrapped(down.url + "/inner")
    assert time.time() - start <= 0.8 + LATE
    assert inner_ended
    return start, [t - start for t in inner_ended], arrivals(down)


def test_an_outer_deadline_stops_the_inner_retries(down: ScriptedServer) -> None:
    inner = opero.opero(cache=False, retries=20, min_delay=0.2, jitter=False)(get)
    outer = opero.opero(cache=False, deadline=0.8, retries=0)
    start, ended, times = _nested(down, outer, inner)
    assert ended[0] < 0.8  # the inner call gave up before the budget was spent
    # the inner call alone would retry for minutes; under 0.8 s it makes the requests at
    # 0, 0.2 and 0.5 s, and stops (the next, at 0.95 s, would cross the outer deadline)
    assert len(times) == 3, [t - start for t in times]
    assert max(times) - start <= 0.8 + SLACK
    assert inner.stats().deadlines == 1


def test_a_deadline_block_stops_nested_calls(down: ScriptedServer) -> None:
    inner = opero.opero(cache=False, retries=20, min_delay=0.2, jitter=False)(get)
    outer = opero.opero(cache=False, retries=20, min_delay=0.05)

    def within(body: Any) -> Any:
        wrapped = outer(body)

        def run(url: str) -> Any:
            with opero.deadline(0.8):
                return wrapped(url)

        return run

    start, ended, times = _nested(down, within, inner)
    assert all(t <= 0.8 + LATE for t in ended)
    assert times and max(times) - start <= 0.8 + SLACK
