"""Shared pauses : a server asked one caller to wait; every caller waits.

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
from typing import Protocol

from loguru import logger

from opero.core.clock import CLOCK
from opero.core.signals import retry_after_of
from opero.core.stats import Counters

__all__ = ["Pauses", "SharedPauses"]


class SharedPauses(Protocol):
    """Pauses kept where other processes see them (``backends/redis/pauses.py``)."""

    def publish(self, key: Hashable, seconds: float) -> None: ...
    def remaining(self, key: Hashable) -> float: ...


class Pauses:
    """The pauses of one decorated function, by value key (None: the function)."""

    __slots__ = ("_lock", "active", "counters", "listeners", "max_delay", "shared", "until")

    def __init__(
        self, counters: Counters, max_delay: float = math.inf, shared: SharedPauses | None = None
    ) -> None:
        self.max_delay = max_delay
        #: some pause may still run (cleared lazily once all ended; always on when shared)
        self.active = shared is not None
        self.until: dict[Hashable, float] = {}
        self.counters = counters
        self._lock = threading.Lock()
        #: told of every new pause (``(key, seconds)``): process workers hold back too
        self.listeners: list[Callable[[Hashable, float], None]] = []
        #: pauses shared with other processes and hosts (the Redis limiter), or None
        self.shared = shared

    def pause(self, key: Hashable, seconds: float) -> bool:
        """Hold ``key`` back for ``seconds`` from now (a longer pause already set stays);
        True when this starts a new pause (not one prolonged)."""
        now = CLOCK.monotonic()
        end = now + seconds
        with self._lock:
            previous = self.until.get(key, -math.inf)
            if end <= previous:
                return False
            self.until[key] = end
            self.active = True
            fresh = previous <= now  # a new pause (not one prolonged)
            if fresh:
                self.counters.pauses += 1
            listeners = list(self.listeners)
        if fresh:
            logger.info("opero: a server asked to wait {:.3f}s (pause of {!r})", seconds, key)
        for listener in listeners:
            listener(key, seconds)
        if self.shared is not None:
            self.shared.publish(key, seconds)
        return fresh

    def server_said(self, exc: BaseException) -> None:
        """A worker saw ``exc`` fail an attempt of the function (no fallback): pause every
        caller at once, before the failure even reaches the caller's loop."""
        hint = retry_after_of(exc)
        if hint is not None:
            self.pause(None, min(hint, self.max_delay))

    def remaining(self, key: Hashable) -> float:
        """Seconds until ``key`` may start (0.0: now)."""
        if not self.active:
            return 0.0
        now = CLOCK.monotonic()
        end = self.until.get(key)
        if end is not None and end > now:
            return end - now
        self._expire(now)
        if self.shared is not None and not CLOCK.zero_waits:
            return self.shared.remaining(key)
        return 0.0

    def _expire(self, now: float) -> None:
        with self._lock:
            for key in [k for k, end in self.until.items() if end <= now]:
                del self.until[key]
            self.active = bool(self.until) or self.shared is not None

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
