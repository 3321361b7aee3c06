"""A local server that answers ``POST /v1/chat/completions`` with ``"stream": true`` as the
OpenAI API does: Server-Sent Events, one ``chat.completion.chunk`` per word, then
``data: [DONE]``, sent in HTTP/1.1 chunks with a pause between them (tests only).

Each request takes the next scripted :class:`Reply` (else the default one) and is counted.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ("Hello", " there", ",", " friend", ".")


@dataclass(frozen=True)
class Reply:
    """What one request gets: an error ``status`` (before any chunk), or the ``words``
    streamed, the connection cut after ``cut_after`` chunks, ``first_delay`` seconds
    before the first chunk and ``gap`` between chunks."""

    status: int = 200
    words: tuple[str, ...] = WORDS
    cut_after: int | None = None
    first_delay: float = 0.0
    gap: float = 0.0
    retry_after: str | None = None


def chunk(word: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": finish}],
    }


class SSEServer:
    """``script(replies...)`` queues replies; ``count()`` is the requests received."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.requests = 0
        self.bodies: list[Any] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                reply = server.take(body)
                if reply.status != 200:
                    self._error(reply)
                else:
                    self._stream(reply)

            def _error(self, reply: Reply) -> None:
                data = json.dumps({"error": {"message": "down", "type": "error"}}).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if reply.retry_after is not None:
                    self.send_header("Retry-After", reply.retry_after)
                self.end_headers()
                self.wfile.write(data)

            def _send(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _stream(self, reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                if reply.first_delay:
                    time.sleep(reply.first_delay)
                try:
                    for n, word in enumerate(reply.words):
                        if reply.cut_after is not None and n >= reply.cut_after:
                            self.close_connection = True
                            return  # cut: no final chunk, the client sees a broken stream
                        if n and reply.gap:
                            time.sleep(reply.gap)
                        self._send(f"data: {json.dumps(chunk(word))}\n\n".encode())
                    self._send(f"data: {json.dumps(chunk('', 'stop'))}\n\n".encode())
                    self._send(b"data: [DONE]\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client went away (an abandoned stream)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def take(self, body: Any) -> Reply:
        with self.lock:
            self.requests += 1
            self.bodies.append(body)
            return self.replies.popleft() if self.replies else self.default

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.replies.extend(replies)

    def count(self) -> int:
        with self.lock:
            return self.requests

    def start(self) -> SSEServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
