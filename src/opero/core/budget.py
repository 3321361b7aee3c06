"""The retry budget of one decorated function: retries are capped at ``ratio`` x the calls
of the last ``window`` seconds, plus ``minimum`` retries a second (a reserve of
``minimum * window`` from the start).

Calls and retries are counted in time buckets of a tenth of the window, so the check costs
the same however many calls there are. Bucketing errs on the safe side: retries are counted
over the current bucket and the ten before it (at least a window), calls over the current
bucket and the nine before it (at most a window), so no span of one window ever holds more
retries than the cap. Shared by every caller, map worker and
``with_options`` variant of the function (retries are always decided in the caller).
"""

from __future__ import annotations

import threading

from opero.core.clock import CLOCK
from opero.policy import RetryBudget

__all__ = ["Budget"]

_BUCKETS = 10  #: buckets per window
_KEPT = _BUCKETS + 1  #: buckets kept: the current one and a whole window before it


class Budget:
    """Counts calls (deposits) and retries (withdrawals) over a sliding window."""

    __slots__ = ("_calls", "_lock", "_retries", "_slot", "_stamps", "policy", "reserve")

    def __init__(self, policy: RetryBudget) -> None:
        self.policy = policy
        self.reserve = policy.minimum * policy.window
        self._slot = policy.window / _BUCKETS
        self._calls = [0] * _KEPT
        self._retries = [0] * _KEPT
        #: the bucket number (time // slot) each bucket holds counts of
        self._stamps = [-1] * _KEPT
        self._lock = threading.Lock()

    def _bucket(self) -> int:
        number = int(CLOCK.monotonic() // self._slot)
        i = number % _KEPT
        if self._stamps[i] != number:
            self._stamps[i] = number
            self._calls[i] = 0
            self._retries[i] = 0
        return i

    def _live(self, counts: list[int], span: int) -> int:
        """The counts of the current bucket and the ``span - 1`` before it."""
        oldest = int(CLOCK.monotonic() // self._slot) - span + 1
        return sum(c for c, s in zip(counts, self._stamps, strict=True) if s >= oldest)

    def deposit(self) -> None:
        """A call was made."""
        with self._lock:
            self._calls[self._bucket()] += 1

    def withdraw(self) -> bool:
        """May one retry be made? (Counted when it may.)"""
        with self._lock:
            i = self._bucket()
            allowed = self.policy.ratio * self._live(self._calls, _BUCKETS) + self.reserve
            if self._live(self._retries, _KEPT) + 1 > allowed:
                return False
            self._retries[i] += 1
            return True
