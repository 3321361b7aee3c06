"""A rate-limited crawl of a local HTTP server (127.0.0.1 only): 8 threads, 20 requests/s.

    python examples/rate_limited_crawl.py

The server answers 429 with a Retry-After header on every fifth request; opero waits as
told and tries again. The rate limit is for the whole map, not per thread.
"""

from __future__ import annotations

import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opero import operomap


class Hits:
    count = 0
    lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        with Hits.lock:
            Hits.count += 1
            throttle = Hits.count % 5 == 0
        if throttle:
            self.send_response(429)
            self.send_header("Retry-After", "0.2")
            self.end_headers()
            return
        body = f"<html>page {self.path}</html>".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep the output readable
        pass


class HTTPRetryable(Exception):
    def __init__(self, code: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {code}")
        self.retry_after = retry_after  # opero uses it as the backoff delay


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    @operomap(mode="thread", workers=8, rate_limit=20, retries=3, cache=False, progress=False)
    def fetch(path: str) -> int:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return len(response.read())
        except urllib.error.HTTPError as exc:
            after = exc.headers.get("Retry-After")
            raise HTTPRetryable(exc.code, float(after) if after else None) from exc

    start = time.perf_counter()
    sizes = fetch([f"/page/{i}" for i in range(30)])
    took = time.perf_counter() - start
    hits = Hits.count
    print(
        f"{len(sizes)} pages, {hits} requests in {took:.2f}s "
        f"(<= 20/s: {hits / took:.1f}/s), all 200: {all(s > 0 for s in sizes)}"
    )
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
