"""P25 (docs/performance.md): a request limit and a token limit together. 2 000 attempts
with mixed costs (20 to 380 tokens, 200 on average: each limit binds about as often) under
``["300/6s", Limit("60000/6s", cost=tokens)]``, callers always waiting: the time to admit
them all against the ideal max(n / request rate, sum of costs / token rate), which neither
limit alone can beat.

Driven three ways: the limiter itself on a simulated clock (one caller that books its next
attempt the moment the last one starts, and 16 such callers), and ``@opero`` with 8 real
threads on the same limits scaled down a hundredfold in time (periods of 60 ms), so that
the run takes about 0.4 s; that one is information (a busy machine's thread wake-ups add
to it). The sum of per-attempt maxima (what booking both limits at one common time gives)
is shown for comparison."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from opero import Limit, opero
from opero.limits.rate import RateLimiter

__all__ = ["p25"]

TARGET = 1.03


def _costs(n: int) -> list[float]:
    rnd = random.Random(25)
    return [float(rnd.choice([20, 50, 100, 150, 200, 250, 300, 350, 380])) for _ in range(n)]


def _simulated(costs: list[float], callers: int) -> float:
    """Seconds from the first admission to the last, each caller booking again as soon as
    its previous attempt starts (on a simulated clock)."""
    lim = RateLimiter([Limit("300/6s"), Limit("60000/6s", cost=len)])
    free = [0.0] * callers
    first = last = 0.0
    for k, cost in enumerate(costs):
        c = k % callers
        at = free[c] = lim.reserve(free[c], [1.0, cost])
        first = at if k == 0 else first
        last = at
    return last - first


def _threads(costs: list[float], scale: float, workers: int = 8) -> float:
    """Real seconds for ``workers`` threads to start every attempt through ``@opero``."""
    tokens = iter(costs)
    lock = threading.Lock()
    starts: list[float] = []

    @opero(
        cache=False,
        rate_limit=[f"300/{6 * scale:g}s", Limit(f"60000/{6 * scale:g}s", cost=lambda c: c)],
    )
    def attempt(cost: float) -> None:
        with lock:
            starts.append(time.monotonic())

    def work() -> None:
        while True:
            with lock:
                cost = next(tokens, None)
            if cost is None:
                return
            attempt(cost)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return max(starts) - min(starts)


def p25(Row: Any, quick: bool) -> tuple[list[Any], dict[str, float]]:
    n = 500 if quick else 2000
    costs = _costs(n)
    ideal = max((n - 1) / 50, sum(costs[:-1]) / 10_000)  # the last admission starts the last
    summed = sum(max(1 / 50, c / 10_000) for c in costs[:-1])
    case = f"P25 {n} attempts, 300/6s + 60000 tokens/6s, mixed costs: seconds to admit"
    rows = []
    figures = {"ideal s": ideal, "sum of per-attempt maxima s": summed}
    for callers in (1, 16):
        took = _simulated(costs, callers)
        figures[f"simulated, {callers} callers s"] = took
        rows.append(
            Row(
                f"{case} ({callers} caller{'s' if callers > 1 else ''}, simulated clock)",
                took,
                "ideal",
                ideal,
                f"<= {TARGET} x",
                took <= TARGET * ideal,
                "s",
            )
        )
    rows.append(
        Row(f"{case} (before: booked at one time)", summed, "ideal", ideal, "(info)", True, "s")
    )
    scale = 0.01
    took = _threads(costs, scale) / scale
    figures["8 threads, time x 100 s"] = took
    rows.append(
        Row(
            f"{case} (8 real threads, periods / 100, x 100)",
            took,
            "ideal",
            ideal,
            "(info)",
            True,
            "s",
        )
    )
    return rows, figures


if __name__ == "__main__":
    from benchmarks.run import Row as _Row

    for row in p25(_Row, quick=False)[0]:
        print(
            f"{row.case}: {row.ours:.2f} {row.unit} vs {row.peer_name} {row.peer:.2f} "
            f"(x {row.ratio:.3f}, target {row.target}, {'PASS' if row.ok else 'FAIL'})"
        )
