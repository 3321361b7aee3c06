"""Cooldowns : a circuit breaker per fallback value (per function without one).

After ``cooldown_after`` consecutive failed attempts of a value, across calls, every call
skips it for ``cooldown`` seconds (open); then one attempt may try it (half-open): a success
closes it, a failure opens it again. While that one probe runs, other calls skip the value.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

from opero.core.clock import CLOCK
from opero.core.stats import Counters

__all__ = ["Breakers"]


class _State:
    __slots__ = ("failures", "open_until", "probing")

    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0  #: monotonic time the value comes back (0.0: closed)
        self.probing = False  #: a half-open attempt is running


class Breakers:
    """The breakers of one decorated function, by value key (None: the function)."""

    __slots__ = ("_lock", "after", "cooldown", "counters", "states")

    def __init__(self, cooldown: float, after: int, counters: Counters) -> None:
        self.cooldown = cooldown
        self.after = after
        self.counters = counters
        self.states: dict[Hashable, _State] = {}
        self._lock = threading.Lock()

    def allows(self, key: Hashable) -> bool:
        """Whether an attempt of ``key`` may start now (a half-open probe is taken here)."""
        with self._lock:
            state = self.states.get(key)
            if state is None or state.open_until == 0.0:
                return True
            if state.probing or CLOCK.monotonic() < state.open_until:
                return False
            state.probing = True  # half-open: this attempt is the one probe
            return True

    def back_in(self, key: Hashable) -> float:
        """Seconds until ``key`` may be tried again (0.0: now)."""
        with self._lock:
            state = self.states.get(key)
            if state is None or state.open_until == 0.0:
                return 0.0
            return max(0.0, state.open_until - CLOCK.monotonic())

    def succeeded(self, key: Hashable) -> None:
        with self._lock:
            state = self.states.get(key)
            if state is not None:
                state.failures = 0
                state.open_until = 0.0
                state.probing = False

    def failed(self, key: Hashable) -> None:
        with self._lock:
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = _State()
            state.failures += 1
            if state.probing or state.failures >= self.after:
                if state.open_until == 0.0 or state.probing:
                    self.counters.cooldowns += 1
                state.open_until = CLOCK.monotonic() + self.cooldown
                state.probing = False

    def release(self, key: Hashable) -> None:
        """A probe that ended without an outcome (cancelled): another may be taken."""
        with self._lock:
            state = self.states.get(key)
            if state is not None:
                state.probing = False
