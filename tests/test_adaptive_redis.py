"""``opero.Adaptive`` with the Redis backend: two real processes share one learned rate."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

SCRIPT = """
    import statistics, sys, time
    from opero import Adaptive, opero

    class Throttled(Exception):
        status_code = 429

    @opero(cache=False, retries=0, rate_limit=Adaptive(start=10, max=10, min=1),
           rate_limit_backend="redis", cache_url=sys.argv[1], cache_namespace=sys.argv[2])
    def ask(fail):
        if fail:
            raise Throttled("429")
        return time.monotonic()

    if sys.argv[3] == "throttled":
        for _ in range(3):  # three bursts of one 429 each, past the once-per-burst window
            try:
                ask(True)
            except Throttled:
                pass
            time.sleep(0.6)
        print(ask.stats().learned_rate)
    else:
        times = [ask(False) for _ in range(6)]
        gaps = [b - a for a, b in zip(times, times[1:])]
        print(ask.stats().learned_rate, statistics.median(gaps))
"""


def run(redis_url: str, mode: str) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), redis_url, "adaptive", mode],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    return [float(x) for x in done.stdout.split()]


def test_two_processes_share_one_learned_rate(redis_url: str) -> None:
    (lowered,) = run(redis_url, "throttled")
    assert lowered == pytest.approx(10 * 0.7**3, rel=0.01)  # 3.43/s, learned from 429s
    rate, gap = run(redis_url, "observe")  # another process, which saw no 429 at all
    assert rate < 7.5  # it continues from the shared rate, not from its own start of 10/s
    assert gap > 0.13  # and spaces its calls by it (10/s would be 0.1 s)


def test_an_outage_falls_back_to_this_process(own_redis) -> None:  # type: ignore[no-untyped-def]
    """With the server gone the limit goes on in the process, from the rate last learned."""
    import time
    import warnings

    from opero import Adaptive, opero

    class Throttled(Exception):
        status_code = 429

    @opero(
        cache=False,
        retries=0,
        rate_limit=Adaptive(start=10, max=10),
        rate_limit_backend="redis",
        cache_url=own_redis.url,
        cache_namespace="outage",
    )
    def ask(fail: bool) -> float:
        if fail:
            raise Throttled("429")
        return time.monotonic()

    with pytest.raises(Throttled):
        ask(True)
    assert ask.stats().learned_rate == pytest.approx(7.0)
    own_redis.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = [ask(False) for _ in range(4)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert min(gaps) > 1 / 10  # still paced, near the 7/s learned before the outage
    assert ask.stats().learned_rate < 10


HEADERS_SCRIPT = """
    import sys, threading, time
    import httpx
    from opero import Adaptive, opero

    local = threading.local()

    @opero(cache=False, retries=0, rate_limit=Adaptive(start="4/s", max="100/s"),
           rate_limit_backend="redis", cache_url=sys.argv[1], cache_namespace="headers")
    def ask():
        client = getattr(local, "client", None) or httpx.Client(timeout=10)
        local.client = client
        response = client.get(sys.argv[2])
        response.raise_for_status()
        return response

    end = time.monotonic() + 5
    def loop():
        while time.monotonic() < end:
            try:
                ask()
            except Exception:
                pass
    threads = [threading.Thread(target=loop) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


@pytest.mark.parametrize("style", ["openai", "anthropic"])
def test_two_processes_follow_the_headers_together(redis_url: str, style: str) -> None:
    """Two processes, two threads each, share what the headers say through Redis: the
    attempts of both count against what remains, and a steady job sees no 429."""
    from tests.limit_server import LimitServer

    server = LimitServer(8, headers=style, delay=0.1).start()
    try:
        jobs = [
            subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(HEADERS_SCRIPT), redis_url, server.url],
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for job in jobs:
            _, err = job.communicate(timeout=90)
            assert job.returncode == 0, err
    finally:
        server.stop()
    ok, throttled = server.counts(0, 99)
    assert throttled == 0, (ok, throttled)
    assert ok >= 0.5 * 8 * 5, ok
