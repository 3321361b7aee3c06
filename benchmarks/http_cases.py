"""P17 (docs/performance.md): 60 items on 8 thread workers against a server that admits 10
requests per rolling second and answers 429 + ``Retry-After: 1`` beyond (each 429 restarting a
1 s penalty during which every request gets a 429). No ``rate_limit`` is set: only the shared
pause (a server-directed delay holds back every caller of the function, not only the one that
received it) keeps the workers from hammering the server. The peer is a hand-written client
that shares one pause across its workers (the OpenAI cookbook's parallel processor does
this)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opero import operomap

__all__ = ["p17"]


class _Limited:
    """The server's state: admissions in the last second and the penalty end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.admitted: deque[float] = deque()
        self.penalty_until = 0.0
        self.limited = 0

    def admit(self) -> bool:
        with self.lock:
            now = time.monotonic()
            while self.admitted and self.admitted[0] <= now - 1.0:
                self.admitted.popleft()
            if now < self.penalty_until or len(self.admitted) >= 10:
                self.penalty_until = now + 1.0
                self.limited += 1
                return False
            self.admitted.append(now)
            return True


def _serve() -> tuple[ThreadingHTTPServer, _Limited]:
    state = _Limited()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            ok = state.admit()
            body = json.dumps({"ok": ok}).encode()
            self.send_response(200 if ok else 429)
            if not ok:
                self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, state


def fetch(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=10) as response:
        return bool(json.loads(response.read())["ok"])


def _peer(url: str, n: int) -> None:
    """Retries 429s, and every worker waits out the one shared pause before a request."""
    lock = threading.Lock()
    pause_until = [0.0]

    def one(_: int) -> bool:
        while True:
            while True:  # wait out the shared pause, however long it has grown
                with lock:
                    wait = pause_until[0] - time.monotonic()
                if wait <= 0:
                    break
                time.sleep(wait)
            try:
                return fetch(url)
            except urllib.error.HTTPError as exc:
                if exc.code != 429:
                    raise
                with lock:
                    pause_until[0] = max(pause_until[0], time.monotonic() + 1.0)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def p17(Row: Any, n: int = 60) -> tuple[list[Any], dict[str, float]]:
    server, state = _serve()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    mapped = operomap(
        mode="thread", workers=8, cache=False, retries=20, progress=False, max_delay=5
    )(fetch)
    try:
        start = time.perf_counter()
        mapped([url] * n)
        ours = time.perf_counter() - start
        ours_limited = state.limited
        time.sleep(1.5)  # the server's window and penalty are over
        state.limited = 0
        start = time.perf_counter()
        _peer(url, n)
        theirs = time.perf_counter() - start
        peer_limited = state.limited
    finally:
        server.shutdown()
        server.server_close()
    ideal = n / 10
    ok = ours <= 2 * ideal and ours_limited <= 45
    rows = [
        Row(
            f"P17 {n} items, 8 threads vs a 10/s server (429s: {ours_limited}; peer's: "
            f"{peer_limited})",
            ours * 1000,
            "shared-pause client",
            theirs * 1000,
            f"<= {2 * ideal:g} s and <= 45 x 429",
            ok,
            "ms",
        )
    ]
    return rows, {"opero": ours, "peer": theirs, "429s": ours_limited, "peer 429s": peer_limited}
