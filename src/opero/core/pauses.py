"""Shared pauses (SPEC 2.7): a server asked one caller to wait; every caller waits.

A failed attempt whose exception carries a server-directed delay (``Retry-After`` and the
other sources of :mod:`opero.core.signals`) pauses its fallback value (or, without fallback,
the function) for ``min(delay, max_delay)``: no attempt of that value starts before then,
from any thread, task or map worker. Within a round a paused value is skipped while another
value can start now; a call whose remaining values are all paused waits for the earliest.
``active`` is a plain attribute, so the direct paths pay one truth test while nothing is
paused.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable, Sequence

from opero.core.clock import CLOCK
from opero.core.stats import Counters

__all__ = ["Pauses"]


class Pauses:
    """The pauses of one decorated function, by value key (None: the function)."""

    __slots__ = ("_lock", "active", "counters", "listeners", "until")

    def __init__(self, counters: Counters) -> None:
        self.active = False  #: some pause may still run (cleared lazily once all ended)
        self.until: dict[Hashable, float] = {}
        self.counters = counters
        self._lock = threading.Lock()
        #: told of every new pause (``(key, seconds)``): process workers hold back too
        self.listeners: list[Callable[[Hashable, float], None]] = []

    def pause(self, key: Hashable, seconds: float) -> None:
        """Hold ``key`` back for ``seconds`` from now (a longer pause already set stays)."""
        end = CLOCK.monotonic() + seconds
        with self._lock:
            if end <= self.until.get(key, -math.inf):
                return
            self.until[key] = end
            self.active = True
            self.counters.pauses += 1
            listeners = list(self.listeners)
        for listener in listeners:
            listener(key, seconds)

    def remaining(self, key: Hashable) -> float:
        """Seconds until ``key`` may start (0.0: now)."""
        if not self.active:
            return 0.0
        now = CLOCK.monotonic()
        end = self.until.get(key)
        if end is not None and end > now:
            return end - now
        self._expire(now)
        return 0.0

    def _expire(self, now: float) -> None:
        with self._lock:
            for key in [k for k, end in self.until.items() if end <= now]:
                del self.until[key]
            self.active = bool(self.until)

    def choose(
        self, keys: Sequence[Hashable], start: int, alive: Callable[[int], bool]
    ) -> tuple[int, float]:
        """The position to try from ``start`` on and how long to wait first: the first
        live value not paused (no wait), else the live value whose pause ends first."""
        best, best_wait = start, math.inf
        for n in range(start, len(keys)):
            if not alive(n):
                continue
            wait = self.remaining(keys[n])
            if wait <= 0:
                return n, 0.0
            if wait < best_wait:
                best, best_wait = n, wait
        return best, (0.0 if math.isinf(best_wait) else best_wait)
