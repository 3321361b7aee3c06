"""A limiter wrapper that records every admission it books (tests only)."""

from __future__ import annotations

import threading
from typing import Any


class RecordingLimiter:
    """Wraps a decorated function's limiter; ``booked`` lists the admission times."""

    def __init__(self, decorated: Any) -> None:
        self.real = decorated.__opero_judge__.limiter
        self.limits = self.real.limits
        self.listens = self.real.listens
        self.booked: list[float] = []
        self._lock = threading.Lock()
        decorated.__opero_judge__.limiter = self

    def peek(self, now: float, costs: Any = None) -> float:
        return float(self.real.peek(now, costs))

    def heard(self, ok: bool, outcome: Any, costs: Any) -> None:
        self.real.heard(ok, outcome, costs)

    def reserve(self, now: float, costs: Any = None) -> float:
        at: float = self.real.reserve(now, costs)
        with self._lock:
            self.booked.append(at)
        return at

    def release(self, at: float) -> None:
        self.real.release(at)


def record_admissions(decorated: Any) -> list[float]:
    """Start recording the admissions of ``decorated``; returns the live list."""
    return RecordingLimiter(decorated).booked
