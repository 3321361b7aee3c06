"""A local OpenAI-style server that enforces rate limits per API key and per model (tests only).

Each limit admits ``n`` requests per rolling ``window`` seconds for one API key (the bearer
token) or one model (the ``model`` field of the JSON body), and answers the rest with a 429
(with ``Retry-After`` when ``retry_after`` is set). Every arrival is recorded with its time,
key, model and status, so tests count what really reached the server and what it refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Arrival:
    at: float
    key: str
    model: str
    status: int


class LimitedServer:
    """``key_limits``/``model_limits``: name -> (requests, window seconds)."""

    def __init__(
        self,
        key_limits: dict[str, tuple[int, float]] | None = None,
        model_limits: dict[str, tuple[int, float]] | None = None,
        retry_after: float | None = None,
        tokens: int = 10,
    ) -> None:
        self.key_limits = key_limits or {}
        self.model_limits = model_limits or {}
        self.retry_after = retry_after
        #: the ``usage.total_tokens`` each answer reports
        self.tokens = tokens
        self.arrivals: list[Arrival] = []
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                auth = self.headers.get("Authorization") or ""
                key = auth.removeprefix("Bearer ").strip()
                model = str(body.get("model", ""))
                status = server.admit(key, model)
                payload = server.answer(status, model)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429 and server.retry_after is not None:
                    self.send_header("Retry-After", f"{server.retry_after:g}")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def admit(self, key: str, model: str) -> int:
        now = time.monotonic()
        with self._lock:
            checks = []
            if key in self.key_limits:
                checks.append((f"key:{key}", *self.key_limits[key]))
            if model in self.model_limits:
                checks.append((f"model:{model}", *self.model_limits[model]))
            status = 200
            for name, n, window in checks:
                seen = self._seen[name]
                while seen and seen[0] <= now - window:
                    seen.popleft()
                if len(seen) >= n:
                    status = 429
            if status == 200:
                for name, _, _ in checks:
                    self._seen[name].append(now)
            self.arrivals.append(Arrival(now, key, model, status))
        return status

    def answer(self, status: int, model: str) -> dict[str, Any]:
        if status != 200:
            return {"error": {"message": "rate limited", "type": "rate_limit", "code": "429"}}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"hi from {model}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": self.tokens},
        }

    def count(self, status: int | None = None, **match: str) -> int:
        with self._lock:
            return sum(
                1
                for a in self.arrivals
                if (status is None or a.status == status)
                and all(getattr(a, k) == v for k, v in match.items())
            )

    def times(self, status: int = 200, **match: str) -> list[float]:
        with self._lock:
            return [
                a.at
                for a in self.arrivals
                if a.status == status and all(getattr(a, k) == v for k, v in match.items())
            ]

    def start(self) -> LimitedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
