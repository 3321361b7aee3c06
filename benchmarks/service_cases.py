"""P20 (docs/performance.md): three API keys serve three times one. ``items`` calls through
``@operomap(mode="thread", workers=8)`` with ``arg_fallback`` over three keys, each key
paced by ``rate_limit={key: "5/s"}``, against a local server that limits each key to 5
requests per second (a token bucket of 5 tokens refilled at 5 a second, the usual form of a
provider's limit) and answers the rest with 429: the wall time with
``fallback_strategy="spread"`` against the ideal ``items / 15`` seconds, and with the
default order strategy (every call goes to the first key: ``items / 5`` seconds)."""

from __future__ import annotations

import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opero import operomap

__all__ = ["p20"]

KEYS = ["key-1", "key-2", "key-3"]
RATE = 5  #: requests per second per key, on the server and in the limits


class _PerKey:
    """Admits ``RATE`` requests per second per key (the path; a token bucket holding at most
    ``RATE`` tokens), 429 beyond."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self.ok = self.refused = 0
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                now = time.monotonic()
                with state.lock:
                    tokens, at = state.buckets.get(self.path, (RATE, now))
                    tokens = min(RATE, tokens + (now - at) * RATE)
                    admitted = tokens >= 1
                    if admitted:
                        tokens -= 1
                        state.ok += 1
                    else:
                        state.refused += 1
                    state.buckets[self.path] = (tokens, now)
                body = b'{"ok": true}' if admitted else b'{"error": "rate limited"}'
                self.send_response(200 if admitted else 429)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _run(server: _PerKey, items: int, strategy: str) -> tuple[float, int]:
    @operomap(
        mode="thread",
        workers=8,
        rate_limit=dict.fromkeys(KEYS, f"{RATE}/s"),
        arg_fallback="key",
        fallback_strategy=strategy,
        cache=False,
        progress=False,
        min_delay=0.2,
    )
    def call(i: int, key: list[str] = KEYS) -> bytes:
        with urllib.request.urlopen(f"{server.url}/{key}", timeout=10) as response:
            return bytes(response.read())

    refused = server.refused
    start = time.monotonic()
    results = call(range(items))
    took = time.monotonic() - start
    assert len(results) == items
    return took, server.refused - refused


def p20(Row: Any, items: int = 300) -> tuple[list[Any], dict[str, float]]:
    server = _PerKey()
    try:
        spread, refused = _run(server, items, "spread")
        time.sleep(1.1)  # the server's windows empty
        order, refused_order = _run(server, items, "order")
    finally:
        server.stop()
    ideal = items / (RATE * len(KEYS))
    case = f"P20 {items} items over 3 keys x {RATE}/s, spread: wall"
    rows = [
        Row(
            case,
            spread,
            "ideal",
            ideal,
            "<= 1.15 x, no 429",
            spread <= 1.15 * ideal and not refused,
            "s",
        ),
        Row(case, spread, "order strategy", order, "(info)", True, "s"),
    ]
    figures = {
        "spread s": spread,
        "order s": order,
        "429 spread": refused,
        "429 order": refused_order,
    }
    return rows, figures
