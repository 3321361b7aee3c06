"""The retry budget of one decorated function: retries are capped at ``ratio`` x the calls
of the last ``window`` seconds, plus ``minimum`` retries a second (a reserve of
``minimum * window`` from the start).

Calls are counted in time buckets of a tenth of the window (the current bucket and the nine
before it: never more than a window), so counting them costs the same however many calls
there are; retries, which the cap keeps few, are kept by time and forgotten exactly one
window later. So no span of one window ever holds more retries than the cap. Shared by every
caller, map worker and ``with_options`` variant of the function (retries are always decided
in the caller).
"""

from __future__ import annotations

import threading
from collections import deque

from opero.core.clock import CLOCK
from opero.policy import RetryBudget

__all__ = ["Budget"]

_BUCKETS = 10  #: buckets per window


class Budget:
    """Counts calls (deposits) and retries (withdrawals) over a sliding window."""

    __slots__ = ("_calls", "_lock", "_retries", "_slot", "_stamps", "policy", "reserve")

    def __init__(self, policy: RetryBudget) -> None:
        self.policy = policy
        self.reserve = policy.minimum * policy.window
        self._slot = policy.window / _BUCKETS
        self._calls = [0] * _BUCKETS
        #: the times of the retries made in the last window
        self._retries: deque[float] = deque()
        #: the bucket number (time // slot) each bucket holds counts of
        self._stamps = [-1] * _BUCKETS
        self._lock = threading.Lock()

    def _bucket(self) -> int:
        number = int(CLOCK.monotonic() // self._slot)
        i = number % _BUCKETS
        if self._stamps[i] != number:
            self._stamps[i] = number
            self._calls[i] = 0
        return i

    def _live_calls(self) -> int:
        """Calls in the current bucket and the nine before it."""
        oldest = int(CLOCK.monotonic() // self._slot) - _BUCKETS + 1
        return sum(c for c, s in zip(self._calls, self._stamps, strict=True) if s >= oldest)

    def deposit(self) -> None:
        """A call was made."""
        with self._lock:
            self._calls[self._bucket()] += 1

    def withdraw(self) -> bool:
        """May one retry be made? (Counted when it may.)"""
        with self._lock:
            now = CLOCK.monotonic()
            retries = self._retries
            while retries and retries[0] <= now - self.policy.window:
                retries.popleft()
            allowed = self.policy.ratio * self._live_calls() + self.reserve
            if len(retries) + 1 > allowed:
                return False
            retries.append(now)
            return True
