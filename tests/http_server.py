"""A local HTTP server that answers like an LLM API would (tests only).

Each request takes the next scripted answer ``(status, headers, body)`` for its path (or the
path's default, else 200 with an OpenAI-style or Anthropic-style body). Every request is
recorded with its arrival time, so tests count what the real clients sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], dict[str, Any] | None]

CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


def error_body(status: int) -> dict[str, Any]:
    return {"error": {"message": f"status {status}", "type": "error", "code": str(status)}}


class ScriptedServer:
    """``script(path, answers...)`` queues answers; ``requests`` lists ``(time, path, body)``."""

    def __init__(self) -> None:
        self.answers: dict[str, deque[Answer]] = defaultdict(deque)
        self.defaults: dict[str, Answer] = {}
        self.requests: list[tuple[float, str, Any]] = []
        self.lock = threading.Lock()
        #: optional hook deciding the answer from (path, body); overrides scripts
        self.decide: Any = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self._answer()

            def do_GET(self) -> None:
                self._answer()

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path = self.path.split("?")[0]
                status, headers, payload = server.next_answer(path, body)
                data = json.dumps(payload if payload is not None else error_body(status)).encode()
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
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def next_answer(self, path: str, body: Any) -> Answer:
        with self.lock:
            self.requests.append((time.time(), path, body))
            if self.decide is not None:
                decided: Answer = self.decide(path, body)
                return decided
            queue = self.answers.get(path)
            if queue:
                return queue.popleft()
            if path in self.defaults:
                return self.defaults[path]
        if path.endswith("/messages"):
            return 200, {}, MESSAGE
        return 200, {}, CHAT

    def script(self, path: str, *answers: Answer) -> None:
        with self.lock:
            self.answers[path].extend(answers)

    def count(self, path: str | None = None) -> int:
        with self.lock:
            return sum(1 for _, p, _ in self.requests if path is None or p == path)

    def reset(self) -> None:
        with self.lock:
            self.answers.clear()
            self.defaults.clear()
            self.requests.clear()
            self.decide = None

    def start(self) -> ScriptedServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
