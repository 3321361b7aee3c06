"""A local HTTP server whose answers take scripted time (tests and benchmarks only).

Each request to a path takes the next scripted latency for that path (``script(path, 2.0,
0.02)``), else the path's default, else ``latency(path)`` if set, else 0. While it waits,
the handler watches its connection: a client that closes it (a cancelled request) is seen
within ~10 ms and recorded as ``closed``. Every request is recorded with its arrival and
end times, so tests count what the clients really sent and what they gave up.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LatencyServer", "Request"]

STEP = 0.01  #: how often a waiting handler looks at its connection


@dataclass
class Request:
    path: str
    arrived: float
    ended: float | None = None
    #: the client closed the connection before the answer was sent
    closed: bool = False
    status: int = 200


class LatencyServer:
    """``script(path, *latencies)``, ``defaults[path] = seconds``, ``statuses[path] = code``."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque[float]] = defaultdict(deque)
        self.defaults: dict[str, float] = {}
        self.statuses: dict[str, int] = {}
        self.latency: Callable[[str], float] | None = None
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                request, seconds = server.arrive(path)
                if not self._wait(seconds):
                    request.closed = True
                    request.ended = time.monotonic()
                    self.close_connection = True
                    return
                data = json.dumps({"path": path}).encode()
                self.send_response(request.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:
                    request.closed = True
                request.ended = time.monotonic()

            def _wait(self, seconds: float) -> bool:
                """Wait ``seconds``; False as soon as the client has gone."""
                end = time.monotonic() + seconds
                sock: socket.socket = self.connection
                while (left := end - time.monotonic()) > 0:
                    readable, _, _ = select.select([sock], [], [], min(STEP, left))
                    if readable:
                        try:
                            if sock.recv(1, socket.MSG_PEEK) == b"":
                                return False
                        except OSError:
                            return False
                        time.sleep(min(STEP, max(left, 0)))  # data pipelined: keep waiting
                return True

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def arrive(self, path: str) -> tuple[Request, float]:
        with self.lock:
            request = Request(path, time.monotonic(), status=self.statuses.get(path, 200))
            self.requests.append(request)
            queue = self.scripts.get(path)
            if queue:
                return request, queue.popleft()
            if path in self.defaults:
                return request, self.defaults[path]
        return request, self.latency(path) if self.latency is not None else 0.0

    def script(self, path: str, *latencies: float) -> None:
        with self.lock:
            self.scripts[path].extend(latencies)

    def seen(self, path: str | None = None) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def count(self, path: str | None = None) -> int:
        return len(self.seen(path))

    def start(self) -> LatencyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
