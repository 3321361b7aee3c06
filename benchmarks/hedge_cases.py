"""P19 (docs/performance.md): what hedging does to tail latency. ``calls`` calls of
``@opero(hedge=0.1)`` from 16 threads against a local HTTP server whose every request takes
20 ms, or 2 s for 5 % of them (drawn independently per request): the call latency at the
99th percentile and the requests sent beyond one per call, with and without hedging."""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opero import opero

__all__ = ["p19"]

FAST, SLOW, SLOW_SHARE = 0.02, 2.0, 0.05
THREADS = 16
HEDGE = 0.1


class _Tail:
    """A server whose requests take ``FAST`` seconds, or ``SLOW`` for ``SLOW_SHARE`` of
    them; it counts the requests."""

    def __init__(self, seed: int = 19) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.random = random.Random(seed)
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with state.lock:
                    state.requests += 1
                    slow = state.random.random() < SLOW_SHARE
                time.sleep(SLOW if slow else FAST)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _run(server: _Tail, calls: int, **options: Any) -> tuple[list[float], int, Any]:
    """Call latencies (seconds, sorted), the requests the server saw, and the stats."""
    f = opero(cache=False, **options)(fetch)
    latencies: list[float] = []
    lock = threading.Lock()

    def one(_: int) -> None:
        start = time.perf_counter()
        f(server.url)
        took = time.perf_counter() - start
        with lock:
            latencies.append(took)

    before = server.requests
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(calls)))
    return sorted(latencies), server.requests - before, f.stats()


def _p99(latencies: list[float]) -> float:
    return latencies[max(0, -(-len(latencies) * 99 // 100) - 1)]


def p19(Row: Any, quick: bool = False) -> tuple[list[Any], dict[str, float]]:
    calls = 300 if quick else 1000
    server = _Tail()
    try:
        hedged, requests, stats = _run(server, calls, hedge=HEDGE)
        plain, _, _ = _run(server, calls)
    finally:
        server.stop()
    p99, p99_plain = _p99(hedged), _p99(plain)
    extra = stats.attempts - calls  # every attempt is a request (some arrive after the run)
    case = f"P19 {calls} calls, 16 threads, 5 % of requests 2 s, hedge={HEDGE}"
    rows = [
        Row(f"{case}: p99 latency", p99, "no hedging", p99_plain, "<= 0.25 s", p99 <= 0.25, "s"),
        Row(
            f"{case}: extra requests",
            extra,
            "limit 10 % of calls",
            calls / 10,
            "<= 10 % of calls",
            extra <= calls / 10,
            "req",
        ),
    ]
    figures = {
        "p50 hedged": hedged[len(hedged) // 2],
        "p99 hedged": p99,
        "max hedged": hedged[-1],
        "p99 without": p99_plain,
        "hedges": stats.hedges,
        "hedge wins": stats.hedge_wins,
        "extra requests": extra,
        "requests seen during the run": requests,
    }
    return rows, figures
