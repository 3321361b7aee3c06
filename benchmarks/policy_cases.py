"""P21 (docs/performance.md): what a retry budget saves a server that is down. ``calls`` calls
of ``@opero(retries=3, min_delay=0.01)`` spread evenly over ``seconds`` (100 a second, sent
from a pool of threads) against a local HTTP server that answers every request with 503:
the requests the server receives with ``retry_budget=0.2`` (at most 0.2 x the calls of the
last 10 s, plus the default reserve of 10 retries a second x the 10 s window), and without a
budget (each call makes all four attempts)."""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opero import opero

__all__ = ["p21"]

RATE = 100  #: calls a second
RESERVE = 10 * 10  #: the default minimum (10 retries a second) x the default window (10 s)


class _Down:
    """A server that fails every request (503) and counts them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with state.lock:
                    state.requests += 1
                body = b'{"error": "down"}'
                self.send_response(503)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bytes(response.read())


def _spread(server: _Down, calls: int, **options: Any) -> tuple[int, float, Any]:
    """``calls`` calls at ``RATE`` a second; the requests they made, the wall time and the
    function's stats."""
    f = opero(cache=False, retries=3, min_delay=0.01, **options)(fetch)
    failed = [0]
    lock = threading.Lock()

    def one() -> None:
        try:
            f(server.url)
        except Exception:
            with lock:
                failed[0] += 1

    before = server.requests
    start = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        for i in range(calls):
            wait = start + i / RATE - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            pool.submit(one)
    took = time.monotonic() - start
    assert failed[0] == calls, f"{calls - failed[0]} calls did not fail against a down server"
    return server.requests - before, took, f.stats()


def p21(Row: Any, calls: int = 1000) -> tuple[list[Any], dict[str, float]]:
    server = _Down()
    try:
        budgeted, took, stats = _spread(server, calls, retry_budget=0.2)
        unbounded, took_without, _ = _spread(server, calls)
    finally:
        server.stop()
    bound = 1.25 * calls + RESERVE
    case = f"P21 {calls} calls over {calls / RATE:g} s vs a down server: requests"
    rows = [
        Row(
            f"{case}, retry_budget=0.2",
            budgeted,
            "limit 1.25 x calls + 10 x 10",
            bound,
            f"<= {bound:g}",
            budgeted <= bound,
            "req",
        ),
        Row(
            f"{case}, retry_budget=0.2",
            budgeted,
            "no retry budget",
            unbounded,
            "(info: 4 x calls)",
            True,
            "req",
        ),
    ]
    figures = {
        "requests with budget": budgeted,
        "requests without": unbounded,
        "refused retries": stats.budget_refusals,
        "seconds with budget": took,
        "seconds without": took_without,
    }
    return rows, figures
