"""A global rate limit: admissions spaced at least ``1/rate`` seconds apart.

The limiter decides and never waits: :meth:`RateLimiter.reserve` books the next free
admission time under a lock and returns it; the caller sleeps until then (``time.sleep``
or ``asyncio.sleep``). One limiter serves every thread and every event loop that calls
the decorated function, so the limit is per function, not per caller. No bursts: slots
are evenly spaced, so no window of length ``w`` holds more than ``ceil(rate*w)+1``.
"""

from __future__ import annotations

import math
import threading

__all__ = ["RateLimiter"]


class RateLimiter:
    """Evenly spaced admissions (a GCRA with no burst allowance)."""

    __slots__ = ("_lock", "_next", "interval", "rate")

    def __init__(self, rate: float) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"rate_limit must be a finite number > 0, got {rate!r}")
        self.rate = rate
        self.interval = 1.0 / rate
        self._next = -math.inf
        self._lock = threading.Lock()

    def reserve(self, now: float) -> float:
        """Book the next admission at or after ``now``; return its time."""
        with self._lock:
            at = now if now > self._next else self._next
            self._next = at + self.interval
            return at

    def release(self, at: float) -> None:
        """Give back the admission booked at ``at`` if no later one was booked since.

        Called when a caller is cancelled while waiting for its slot, so a cancelled
        wait does not slow down the callers that come after it.
        """
        with self._lock:
            if self._next == at + self.interval:
                self._next = at
