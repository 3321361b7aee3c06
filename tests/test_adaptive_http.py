"""``opero.Adaptive`` against a real local HTTP server whose limit the client is not told,
and against servers that say their limits in OpenAI's and Anthropic's headers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from opero import Adaptive, opero
from tests.limit_server import LimitServer

MESSAGES = [{"role": "user", "content": "hi"}]


def hammer(call: Callable[[], Any], threads: int, seconds: float) -> None:
    """``threads`` threads calling ``call`` in a loop for ``seconds`` (failures ignored)."""
    end = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < end:
            try:
                call()
            except Exception:
                pass

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def httpx_get(url: str) -> Callable[[], httpx.Response]:
    local = threading.local()

    def get() -> httpx.Response:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=10)
        response = client.get(url + "/v1/chat/completions")
        response.raise_for_status()
        return response

    return get


def test_learns_a_limit_it_is_not_told_and_follows_it_down() -> None:
    """20 requests in any rolling second, plain 429s beyond, halved to 10 at t = 8 s."""
    server = LimitServer(lambda t: 20 if t < 8 else 10).start()
    try:
        get = httpx_get(server.url)
        f = opero(cache=False, retries=0, rate_limit=Adaptive(start="2/s", max="200/s"))(get)
        hammer(f, threads=12, seconds=18)
        learned = f.stats().learned_rate
    finally:
        server.stop()
    for start, stop, limit in ((4, 8, 20), (13, 18, 10)):
        ok, throttled = server.counts(start, stop)
        assert ok >= 0.6 * limit * (stop - start), (start, ok, throttled)
        assert throttled <= 0.15 * (ok + throttled), (start, ok, throttled)
    assert isinstance(learned, float) and 4 <= learned <= 16


def raw_openai(url: str) -> Callable[[], Any]:
    import openai

    client = openai.OpenAI(base_url=url + "/v1", api_key="test-key", max_retries=0)

    def create() -> Any:
        return client.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]

    return create


@pytest.mark.parametrize(
    ("style", "client", "delay"),
    [
        ("openai", "httpx", 0.0),
        ("anthropic", "httpx", 0.0),
        ("openai", "openai SDK raw response", 0.0),
        # a slow model: each answer comes 0.3 s after the server counted it, so up to 3 other
        # attempts are in flight when it arrives (what it says remains may be theirs)
        ("openai", "httpx", 0.3),
        ("anthropic", "httpx", 0.3),
        # answers 0.1-0.6 s late come back out of order: an older one says more remains
        ("anthropic", "httpx", (0.1, 0.6)),
    ],
)
def test_a_steady_job_paced_by_headers_sees_no_429(
    style: str, client: str, delay: float | tuple[float, float]
) -> None:
    """8 requests per 1-second window, said in the headers: spread until each reset."""
    server = LimitServer(8, headers=style, delay=delay).start()
    try:
        call = raw_openai(server.url) if client != "httpx" else httpx_get(server.url)
        f = opero(cache=False, retries=0, rate_limit=Adaptive(start="4/s", max="100/s"))(call)
        hammer(f, threads=4, seconds=5)
    finally:
        server.stop()
    ok, throttled = server.counts(0, 99)
    assert throttled == 0, (ok, throttled, server.log)
    assert ok >= 0.6 * 8 * 4, ok  # most of the budget is used
