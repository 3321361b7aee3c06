"""A local HTTP server with a rate limit the client is not told (tests and benchmarks).

``LimitServer(limit)`` admits ``limit(t)`` requests in any rolling second (``t``: seconds
since it started) and answers the rest with a plain 429 (no ``Retry-After``: the limit is to
be learned). ``LimitServer(limit, headers="openai" | "anthropic")`` instead admits
``limit(t)`` requests per fixed window of ``window`` seconds and says on every answer how
many remain and when the window resets, as OpenAI (``x-ratelimit-*-requests``, a duration)
or Anthropic (``anthropic-ratelimit-requests-*``, an RFC 3339 time) do. Every answer is
logged as ``(t, status)`` when it is decided; ``delay`` seconds later it is sent (a slow
model: the headers are that old when they arrive). Bodies are OpenAI chat completions.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.http_server import CHAT, error_body

__all__ = ["LimitServer"]


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``"1.25s"``, ``"250ms"``, ``"1m30s"`` (rounded up to 1 ms)."""
    millis = math.ceil(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:g}s"
    return f"{minutes}m{text}" if minutes else text


class LimitServer:
    """See the module docstring; ``url``, ``log``, ``start()``, ``stop()``."""

    def __init__(
        self,
        limit: float | Callable[[float], float],
        headers: str | None = None,
        window: float = 1.0,
        delay: float | tuple[float, float] = 0.0,
    ) -> None:
        self.limit: Callable[[float], float] = limit if callable(limit) else (lambda t: limit)
        self.headers = headers
        self.window = window
        #: seconds each answer takes after it is decided (a slow model), or a range to draw
        #: it from (answers then come back in another order than they were decided)
        self.delay = delay
        self.lock = threading.Lock()
        self.log: list[tuple[float, int]] = []
        self.admitted: deque[float] = deque()
        self.window_end = 0.0
        self.used = 0
        self.started = time.monotonic()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self._answer()

            def do_GET(self) -> None:
                self._answer()

            def _answer(self) -> None:
                status, headers = server.decide()
                delay = server.delay
                if isinstance(delay, tuple):
                    time.sleep(random.uniform(*delay))
                elif delay:
                    time.sleep(delay)
                data = json.dumps(CHAT if status == 200 else error_body(status)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def decide(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            now = time.monotonic() - self.started
            if self.headers is None:
                status, headers = self._rolling(now), {}
            else:
                status, headers = self._fixed(now)
            self.log.append((now, status))
            return status, headers

    def _rolling(self, now: float) -> int:
        admitted = self.admitted
        while admitted and admitted[0] <= now - 1.0:
            admitted.popleft()
        if len(admitted) < self.limit(now):
            admitted.append(now)
            return 200
        return 429

    def _fixed(self, now: float) -> tuple[int, dict[str, str]]:
        if now >= self.window_end:
            self.window_end = now + self.window
            self.used = 0
        budget = int(self.limit(now))
        status = 200 if self.used < budget else 429
        if status == 200:
            self.used += 1
        remaining, reset = str(budget - self.used), self.window_end - now
        if self.headers == "openai":
            return status, {
                "x-ratelimit-limit-requests": str(budget),
                "x-ratelimit-remaining-requests": remaining,
                "x-ratelimit-reset-requests": _duration(reset),
            }
        at = datetime.now(UTC) + timedelta(seconds=reset)
        return status, {
            "anthropic-ratelimit-requests-limit": str(budget),
            "anthropic-ratelimit-requests-remaining": remaining,
            "anthropic-ratelimit-requests-reset": at.isoformat(timespec="milliseconds"),
        }

    def counts(self, start: float, end: float) -> tuple[int, int]:
        """Successes and 429s answered from ``start`` to ``end`` (seconds since start)."""
        with self.lock:
            inside = [status for t, status in self.log if start <= t < end]
        return inside.count(200), inside.count(429)

    def start(self) -> LimitServer:
        self.started = time.monotonic()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
