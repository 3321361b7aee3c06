"""P18 (docs/performance.md): a rate limit that learns a limit it is not told.

``Adaptive(start="2/s", max="200/s")`` on a function called by 16 threads in a loop, against a
local server that admits L = 20 requests in any rolling second and answers the rest with a
plain 429 (no ``Retry-After``), L dropping to 10 at t = 30 s, 60 s in all. Side by side, at
the same time, botocore's adaptive client rate limiter (``botocore.retries.adaptive``, the
parts its ``register_retry_handler`` wires) driven by 16 threads of its own against a server
of its own. From t = 10 s to 30 s and from 40 s to 60 s: successes per second as a share of
L, and 429s as a share of requests. ``quick`` halves every time. The learned rates and the
server's limit over time are drawn to docs/img/p18.png (full runs).
"""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import Any

from opero import Adaptive, opero
from tests.limit_server import LimitServer

__all__ = ["p18"]

WORKERS = 16
PLOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "p18.png"


class Throttled(Exception):
    def __init__(self) -> None:
        super().__init__("429 Too Many Requests")
        self.status_code = 429


def _sender(url: str) -> Any:
    """``send()``: one GET on this thread's keep-alive connection; its status."""
    host, port = url.removeprefix("http://").split(":")
    local = threading.local()

    def send() -> int:
        for _ in range(3):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(host, int(port), timeout=10)
            try:
                conn.request("GET", "/v1/chat/completions")
                response = conn.getresponse()
                response.read()
                return int(response.status)
            except (OSError, http.client.HTTPException):
                conn.close()
                local.conn = None
        raise ConnectionError(url)

    return send


class _Detector:
    """botocore's throttling detector reads botocore responses; here: the status."""

    def is_throttling_error(self, **kwargs: Any) -> bool:
        return bool(kwargs.get("status") == 429)


def _botocore() -> tuple[Any, Any]:
    """botocore's adaptive limiter as ``register_retry_handler`` builds it."""
    from botocore.retries import adaptive, bucket, throttling

    clock = bucket.Clock()
    bucket_ = bucket.TokenBucket(max_rate=1, clock=clock)
    limiter = adaptive.ClientRateLimiter(
        rate_adjustor=throttling.CubicCalculator(
            starting_max_rate=0, start_time=clock.current_time()
        ),
        rate_clocker=adaptive.RateClocker(clock),
        token_bucket=bucket_,
        throttling_detector=_Detector(),
        clock=clock,
    )
    return limiter, bucket_


def _run(seconds: float, drop: float) -> dict[str, Any]:
    def limit(t: float) -> float:
        return 20 if t < drop else 10

    ours, theirs = LimitServer(limit), LimitServer(limit)
    send_ours, send_theirs = _sender(ours.url), _sender(theirs.url)

    def request() -> int:
        if send_ours() == 429:
            raise Throttled
        return 200

    f = opero(cache=False, retries=0, rate_limit=Adaptive(start="2/s", max="200/s"))(request)
    boto, boto_bucket = _botocore()
    ours.start()
    theirs.start()
    begin = time.monotonic()
    end = begin + seconds

    def ours_loop() -> None:
        while time.monotonic() < end:
            try:
                f()
            except Throttled:
                pass

    def theirs_loop() -> None:
        while time.monotonic() < end:
            boto.on_sending_request(request=None)
            boto.on_receiving_response(status=send_theirs())

    threads = [threading.Thread(target=ours_loop) for _ in range(WORKERS)]
    threads += [threading.Thread(target=theirs_loop) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    samples: list[tuple[float, float, float | None, float]] = []
    while (now := time.monotonic()) < end:
        t = now - begin
        enabled = boto._enabled
        learned = f.stats().learned_rate
        assert isinstance(learned, float)
        samples.append((t, learned, boto_bucket.max_rate if enabled else None, limit(t)))
        time.sleep(0.2)
    for thread in threads:
        thread.join()
    ours.stop()
    theirs.stop()
    return {"ours": ours, "theirs": theirs, "samples": samples}


def _plot(samples: list[tuple[float, float, float | None, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s[0] for s in samples]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.step(t, [s[3] for s in samples], where="post", color="black", label="server limit L")
    ax.plot(t, [s[1] for s in samples], label="opero Adaptive: learned rate")
    boto = [(s[0], s[2]) for s in samples if s[2] is not None]
    ax.plot([b[0] for b in boto], [b[1] for b in boto], label="botocore adaptive: rate")
    ax.set_xlabel("seconds")
    ax.set_ylabel("requests / second")
    ax.set_ylim(0, 32)
    ax.set_title("P18: learning a rate limit that is not told (16 threads each)")
    ax.legend(loc="upper right")
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=100)
    plt.close(fig)


def p18(Row: Any, quick: bool = False) -> tuple[list[Any], dict[str, float]]:
    scale = 0.5 if quick else 1.0
    run = _run(60 * scale, 30 * scale)
    if not quick:
        _plot(run["samples"])
    rows: list[Any] = []
    figures: dict[str, float] = {}
    for a, b, limit in ((10, 30, 20), (40, 60, 10)):
        start, stop = a * scale, b * scale
        shares = {}
        for who in ("ours", "theirs"):
            ok, throttled = run[who].counts(start, stop)
            shares[who] = (ok / (stop - start) / limit, 100 * throttled / max(1, ok + throttled))
            figures[f"{who} {a}-{b}s successes/L"] = shares[who][0]
            figures[f"{who} {a}-{b}s 429 %"] = shares[who][1]
        (ours_ok, ours_429), (boto_ok, boto_429) = shares["ours"], shares["theirs"]
        case = f"P18 Adaptive vs unknown L={limit}/s, t={start:g}-{stop:g} s"
        rows.append(
            Row(
                f"{case}: successes / L",
                ours_ok,
                "botocore adaptive",
                boto_ok,
                ">= 0.85, >= peer",
                ours_ok >= 0.85 and ours_ok >= boto_ok,
                "xL",
            )
        )
        rows.append(
            Row(
                f"{case}: 429s",
                ours_429,
                "botocore adaptive",
                boto_429,
                "<= 5 %, <= peer",
                ours_429 <= 5 and ours_429 <= boto_429,
                "%",
            )
        )
    return rows, figures
