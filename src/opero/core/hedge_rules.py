"""Hedged attempts, as the judge sees them (``hedge=``): when an attempt is slow, another
starts alongside it, so several attempts of one call may be in flight at once.

Each attempt in flight is a :class:`Leg`: what the call held for it (its fallback position,
its breaker ticket, the limiter that admitted it, what its observers gave back, the
concurrency slots to give back when it ends). The call itself keeps the state of "the
attempt being made"; a leg puts its own back (:meth:`Leg.enter`) before it is judged, so
the judge's rules read it as they would on a call with one attempt at a time.

:meth:`Hedging.hedge_choose` picks what a hedge runs: the first fallback value (in order)
neither in flight nor failed in this round (or the same value, without fallback) that can
start at once — not open, not paused, admitted by its rate limit and by the concurrency
limits now; nothing that would have to wait. :meth:`Hedging.settle_leg` judges an outcome
while other attempts may still run: a success is the call's result; a failure is counted,
told and recorded like any other, but while another attempt runs the call goes on
(:data:`HELD`); the last failure is judged as usual (next value, next round, or the end).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from opero.core.call import Call
from opero.core.clock import CLOCK
from opero.core.failures import FailureRules, marked_final
from opero.core.holds import Holds
from opero.core.signals import retry_after_of

if TYPE_CHECKING:
    from opero.core.breaker import Ticket
    from opero.core.call import Booking
    from opero.core.retry import Attempts
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit

__all__ = ["HELD", "Flight", "Hedging", "Leg", "Release"]

#: gives back what an attempt held (a concurrency slot, a map's worker)
Release = Callable[[], None]

#: :meth:`Hedging.settle_leg`: the attempt failed, another still runs: wait for it
HELD = -1.0


class Leg:
    """One attempt of a call that may run beside others."""

    __slots__ = ("costs", "hedge", "held", "index", "limiter", "sent", "ticket", "watching")

    def __init__(self, hedge: bool, held: list[Release]) -> None:
        #: a hedge (not the call's first attempt of its flight)
        self.hedge = hedge
        #: what to give back when the attempt ends (called once, where it ends)
        self.held = held
        self.index = 0
        self.ticket: Ticket | None = None
        self.limiter: Limiter | None = None
        self.costs: list[float] | None = None
        self.sent: float | None = None
        self.watching: list[Any] | None = None

    def capture(self, call: Call) -> Leg:
        """Take over the state of the attempt the call just started (the call is left
        ready for another)."""
        walk = call.walk
        self.index = walk.index if walk is not None else 0
        self.ticket, call.ticket = call.ticket, None
        self.limiter, call.limiter = call.limiter, None
        self.costs, call.costs = call.costs, None
        self.sent, call.sent = call.sent, None
        self.watching, call.watching = call.watching, None
        return self

    def enter(self, call: Call) -> None:
        """Make this the attempt being judged (its state is handed back to the call)."""
        walk = call.walk
        if walk is not None:
            walk.index = self.index
        call.ticket = self.ticket
        call.limiter, self.limiter = self.limiter, None
        call.costs = self.costs
        call.sent, self.sent = self.sent, None
        call.watching, self.watching = self.watching, None

    def release(self) -> None:
        held, self.held = self.held, []
        for give_back in reversed(held):
            give_back()


class Flight:
    """The attempts of one call in flight together: a first attempt and its hedges, until
    one succeeds or all have failed."""

    __slots__ = ("fatal", "running", "started")

    def __init__(self, started: float) -> None:
        #: when the first attempt started (the k-th hedge is due k x hedge after it)
        self.started = started
        self.running: list[Leg] = []
        #: a failure that ends the call once no other attempt is left to succeed
        self.fatal: BaseException | None = None

    def busy(self) -> set[int]:
        return {leg.index for leg in self.running}

    def failed(self, exc: BaseException, ends: bool) -> float:
        """One of its attempts failed with ``exc`` (``ends``: a failure that ends the
        call): :data:`HELD` while another attempt runs; else the call ends with the first
        failure that would end it."""
        if ends and self.fatal is None:
            self.fatal = exc
        if self.running:
            return HELD
        assert self.fatal is not None
        raise self.fatal


class Hedging(FailureRules):
    """The judge's rules for attempts in flight together (the judge is built on them)."""

    is_async: bool
    retry_on: tuple[type[BaseException], ...]
    settle: Callable[[Call, bool, Any], float | None]

    def hedge_choose(self, call: Call, busy: Collection[int], held: list[Release]) -> Leg | None:
        """A hedge of ``call`` that can start at once, its value chosen (the call is set to
        it) and its concurrency slots and breaker ticket taken; None: skipped, and what
        ``held`` holds (a map's worker) is given back. Its admission is booked next
        (:meth:`hedge_begin`)."""
        leg = Leg(True, held)
        slots = self.slots
        if slots is not None:
            if not slots.try_acquire():
                leg.release()
                return None
            held.append(slots.release)
        values = call.values
        walk = self._walk(call) if values is not None else call.walk
        for index in _candidates(values, walk, busy):
            key = Holds.key(values, index) if values is not None else call.single
            if not self._free_now(call, key, index if values is not None else None):
                continue
            if not self._take(call, key, held):
                continue
            if walk is not None:
                walk.index = index
            call.limiter, call.costs, call.sent, call.watching = None, None, None, None
            return leg
        leg.release()
        return None

    def _take(self, call: Call, key: str | None, held: list[Release]) -> bool:
        """Take value ``key``'s concurrency slot (into ``held``) and its breaker ticket
        (into ``call``) for a hedge; False: another caller holds its half-open probe, or
        its slots are full (nothing is kept)."""
        value_slots = self._value_slots_of(key)
        if value_slots is not None and not value_slots.try_acquire():
            return False
        ticket = None
        breakers = self.holds.breakers
        if breakers is not None:
            ticket = breakers.admit(key)
            if ticket is None:  # another caller holds its half-open probe
                if value_slots is not None:
                    value_slots.release()
                return False
        if value_slots is not None:
            held.append(value_slots.release)
        call.ticket = ticket
        return True

    def _free_now(self, call: Call, key: str | None, index: int | None) -> bool:
        """Whether an attempt of this value could start now: not open, not paused, its
        rate limit admitting it now."""
        breakers = self.holds.breakers
        if breakers is not None and breakers.back_in(key) > 0:
            return False
        if CLOCK.zero_waits:
            return True
        if self.holds.pauses.active and self.holds.pauses.remaining(key) > 0:
            return False
        limiter = self.limiter_of(call, index)
        if limiter is None:
            return True
        now = CLOCK.monotonic()
        return limiter.peek(now, self._costs(limiter, call, index)) <= now

    def _value_slots_of(self, key: str | None) -> RunningLimit | None:
        route = self.route
        if route is None:
            return self.service_slots
        gate = route.gate(key)
        return None if gate is None else gate.slots

    def hedge_begin(self, call: Call, leg: Leg, booking: Booking | None) -> bool:
        """The hedge chosen by :meth:`hedge_choose` starts now, unless its admission would
        have to wait (``booking``): then it is given back and skipped (False)."""
        if booking is not None:
            self.unbook(call, booking)
            self.holds.abandoned(call.key, call.ticket)
            call.ticket = None
            leg.release()
            return False
        self.started(call)
        self.counters.hedges += 1
        leg.capture(call)
        return True

    def dropped(self, call: Call, leg: Leg) -> None:
        """An attempt still running when its call ended (a success elsewhere, the call's
        end): it has no outcome; a half-open probe it held is freed."""
        leg.enter(call)
        call.limiter = call.sent = None
        self._told(call, "hedge_cancelled", None)
        self.holds.abandoned(call.key, call.ticket)

    def settle_leg(
        self, call: Call, flight: Flight, leg: Leg, ok: bool, value: Any
    ) -> float | None:
        """:meth:`settle` for an attempt of a flight (``leg``, no longer in
        ``flight.running``): None to return ``value``; :data:`HELD` when it failed and
        another attempt still runs; else the wait before the next attempt. Raises the
        exception that ends the call."""
        leg.enter(call)
        if not flight.running and flight.fatal is None:
            wait = self.settle(call, ok, value)
            if wait is None and leg.hedge:
                self.counters.hedge_wins += 1
            return wait
        if call.limiter is not None:
            self._heard(call, ok, value)
        exc = self._leg_failure(call, leg, ok, value)
        if exc is None:
            return None
        return flight.failed(exc, self._aside(call, exc))

    def _leg_failure(self, call: Call, leg: Leg, ok: bool, value: Any) -> BaseException | None:
        """The failure an attempt beside others ended with (told), or None when it
        succeeded (told and counted: the call's result)."""
        if not ok:
            self._told(call, "timeout" if isinstance(value, TimeoutError) else "failure", value)
            if not isinstance(value, Exception):  # cancelled, interrupted: ends the call now
                self._ended(call, value)
                raise value
            return value
        error = self._returned(call, value)  # (a hedged call is never plain)
        if error is not None:
            return error
        self._succeeded(call)
        if leg.hedge:
            self.counters.hedge_wins += 1
        return None

    def _aside(self, call: Call, exc: BaseException) -> bool:
        """A failure judged while other attempts may run: counted, told to pauses and
        breakers and recorded in the call's round, as :meth:`settle` would; True when it
        would end the call (the call ends with it once no other attempt can succeed)."""
        if not isinstance(exc, self.retry_on) and not marked_final(exc):
            self._ended(call, exc)
            return True
        permanent = self._counted(call, exc)
        if permanent is None:
            return True
        walk = self._walk(call)
        walk.record(exc)
        walk.heed(retry_after_of(exc))  # the round's backoff heeds it, as for any failure
        if call.values is None:
            return permanent  # the one value will not do
        walk.tried.add(walk.index)
        if permanent:
            walk.dead.add(walk.index)
        return False


def _candidates(
    values: list[object] | None, walk: Attempts | None, busy: Collection[int]
) -> list[int]:
    """The fallback positions a hedge may try: neither in flight nor failed in this round
    (without fallback values: the one value)."""
    if values is None:
        return [0]
    assert walk is not None
    gone = walk.tried | walk.dead
    return [n for n in range(len(values)) if n not in busy and n not in gone]
