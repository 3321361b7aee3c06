"""Cooldowns: a circuit breaker per fallback value (per function without one).

After ``cooldown_after`` consecutive failed attempts of a value, across calls, every call
skips it for ``cooldown`` seconds (open); then one attempt may try it (half-open): a success
closes it, a failure opens it again. While that one probe runs, other calls skip the value.

Only the probe closes an open breaker. Under concurrency, attempts that started before the
breaker opened end afterwards; their outcomes must not undo it. So an attempt asks
:meth:`Breakers.admit` before it starts and gets a :class:`Ticket` (or None: skip the
value), and hands that ticket to :meth:`~Breakers.succeeded`, :meth:`~Breakers.failed` or
:meth:`~Breakers.release` when it ends:

- the probe's ticket closes the breaker on success and opens it again on failure;
- any other ticket resets the failure count on success only while the breaker is closed and
  has not opened since the attempt started; its failure counts toward ``cooldown_after``
  but neither moves an open breaker's cooldown nor decides for the probe.

Without a ticket (the older calls), a success resets the count while the breaker is closed,
closes it while a probe runs (the ticketless caller cannot be told from the probe), and does
nothing while it is open; a failure counts as before.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable
from typing import NamedTuple

from opero.core.clock import CLOCK
from opero.core.stats import Counters

__all__ = ["Breakers", "Ticket"]


class Ticket(NamedTuple):
    """What one attempt of a value started under (see :meth:`Breakers.admit`)."""

    #: how many times the breaker had opened when the attempt started
    generation: int
    #: nonzero: this attempt is the half-open probe (its id)
    probe: int = 0
    #: issued by the breakers shared through Redis, not by this process's own
    shared: bool = False


class _State:
    __slots__ = ("failures", "generation", "open_until", "probing")

    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0  #: monotonic time the value comes back (0.0: closed)
        self.probing = 0  #: the id of the half-open attempt running (0: none)
        self.generation = 0  #: how many times it opened


class Breakers:
    """The breakers of one decorated function, by value key (None: the function)."""

    __slots__ = ("_ids", "_lock", "after", "cooldown", "counters", "listener", "states")

    def __init__(
        self,
        cooldown: float,
        after: int,
        counters: Counters,
        listener: Callable[[Hashable, bool], None] | None = None,
    ) -> None:
        #: told ``(key, opened)`` when a breaker opens (True) or closes (False), unlocked
        self.listener = listener
        self.cooldown = cooldown
        self.after = after
        self.counters = counters
        self.states: dict[Hashable, _State] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def admit(self, key: Hashable) -> Ticket | None:
        """The ticket of an attempt of ``key`` starting now, or None if it may not start
        (open, or half-open with its probe running); a half-open probe is taken here."""
        with self._lock:
            state = self.states.get(key)
            if state is None:
                return Ticket(0)
            if state.open_until == 0.0:
                return Ticket(state.generation)
            if state.probing or CLOCK.monotonic() < state.open_until:
                return None
            state.probing = next(self._ids)  # half-open: this attempt is the one probe
            return Ticket(state.generation, state.probing)

    def allows(self, key: Hashable) -> bool:
        """Whether an attempt of ``key`` may start now (:meth:`admit` without the ticket)."""
        return self.admit(key) is not None

    def back_in(self, key: Hashable) -> float:
        """Seconds until ``key`` may be tried again (0.0: now)."""
        with self._lock:
            state = self.states.get(key)
            if state is None or state.open_until == 0.0:
                return 0.0
            return max(0.0, state.open_until - CLOCK.monotonic())

    def succeeded(self, key: Hashable, ticket: Ticket | None = None) -> None:
        """An attempt of ``key`` that started under ``ticket`` succeeded."""
        with self._lock:
            state = self.states.get(key)
            if state is None:
                return
            closed = self._closes(state, ticket)
        if closed and self.listener is not None:
            self.listener(key, False)

    def failed(self, key: Hashable, ticket: Ticket | None = None) -> None:
        """An attempt of ``key`` that started under ``ticket`` failed."""
        with self._lock:
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = _State()
            state.failures += 1
            opened = self._opens(state, ticket) and self._open(state)
        if opened and self.listener is not None:
            self.listener(key, True)

    @classmethod
    def _closes(cls, state: _State, ticket: Ticket | None) -> bool:
        """A success under ``ticket``: True when it closes the breaker (the probe's, or a
        ticketless one while a probe runs); a success while closed resets the count."""
        if ticket is not None and not ticket.shared:
            if ticket.probe and ticket.probe == state.probing:
                return cls._close(state)
            if state.open_until == 0.0 and ticket.generation == state.generation:
                state.failures = 0  # (not when it opened since the attempt started)
            return False
        if state.open_until == 0.0:
            state.failures = 0
            return False
        return bool(state.probing) and cls._close(state)

    def _opens(self, state: _State, ticket: Ticket | None) -> bool:
        """Whether a failure under ``ticket`` (already counted) opens the breaker: the
        probe's does; another attempt's only once ``cooldown_after`` failures are counted
        while it is closed (ticketless: or while a probe runs)."""
        if ticket is None or ticket.shared:
            return bool(state.probing) or state.failures >= self.after
        if ticket.probe:
            return ticket.probe == state.probing
        return state.open_until == 0.0 and state.failures >= self.after

    def release(self, key: Hashable, ticket: Ticket | None = None) -> None:
        """An attempt ended without an outcome (cancelled): if it was the probe, another
        may be taken."""
        with self._lock:
            state = self.states.get(key)
            if state is None:
                return
            if ticket is None or ticket.shared or ticket.probe == state.probing:
                state.probing = 0

    def _open(self, state: _State) -> bool:
        """Open (or keep open longer); True when it was closed or probing (counted)."""
        opened = state.open_until == 0.0 or bool(state.probing)
        if opened:
            self.counters.cooldowns += 1
            state.generation += 1
        state.open_until = CLOCK.monotonic() + self.cooldown
        state.probing = 0
        return opened

    @staticmethod
    def _close(state: _State) -> bool:
        state.failures = 0
        state.open_until = 0.0
        state.probing = 0
        return True
