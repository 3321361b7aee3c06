"""A global rate limit: admissions spaced so that no window holds more than the limit allows.

The limiter decides and never waits: :meth:`RateLimiter.reserve` books the next free
admission time under a lock and returns it; the caller sleeps until then (``time.sleep``
or ``asyncio.sleep``). One limiter serves every thread and every event loop that calls
the decorated function, so the limit is per function, not per caller. No bursts: slots
are evenly spaced, so no window of length ``w`` holds more than ``ceil(rate*w)+1``.

Several limits (``rate_limit=["500/minute", Limit("30000/minute", cost=tokens)]``) are
booked together: an attempt is admitted at the first time every limit allows, and each
limit's schedule moves on from that time by ``cost / rate`` (a GCRA per limit, weighted,
with no burst allowance). An attempt whose cost exceeds a whole period's budget is
admitted alone and moves its schedule by as much.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from opero.rates import Limit

__all__ = ["RateLimiter"]


class RateLimiter:
    """Evenly spaced admissions under one or more (weighted) limits."""

    __slots__ = ("_last", "_lock", "_next", "intervals", "limits", "rate")

    def __init__(self, limits: float | Sequence[Limit]) -> None:
        if isinstance(limits, int | float):
            limits = (Limit(limits),)
        self.limits = tuple(limits)
        self.rate = self.limits[0].rate
        self.intervals = [1.0 / limit.rate for limit in self.limits]  # seconds per unit
        self._next = [-math.inf] * len(self.limits)
        self._last: tuple[float, list[float], list[float]] | None = None
        self._lock = threading.Lock()

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float:
        """Book the next admission at or after ``now`` (``costs``: units per limit, 1 each
        without); return its time."""
        with self._lock:
            booked = self._next
            at = max(now, *booked) if len(booked) > 1 else max(now, booked[0])
            intervals = self.intervals
            if costs is None:
                moved = [at + step for step in intervals]
            else:
                moved = [at + cost * step for cost, step in zip(costs, intervals, strict=True)]
            self._last = (at, booked, moved)
            self._next = moved
            return at

    def release(self, at: float) -> None:
        """Give back the admission booked at ``at`` if no later one was booked since.

        Called when a caller is cancelled while waiting for its slot, so a cancelled
        wait does not slow down the callers that come after it.
        """
        with self._lock:
            last = self._last
            if last is not None and last[0] == at and self._next is last[2]:
                self._next = last[1]
                self._last = None
