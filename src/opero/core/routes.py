"""Budgets per fallback value: which limiter, concurrency cap, pauses and breakers an
attempt of one value answers to.

``rate_limit={value: limits | Service, "*": ...}`` gives each fallback value a budget of its
own. A :class:`Route` finds the :class:`Gate` of a value by its key (the key pauses and
breakers use): an entry given for it, else one built from the ``"*"`` template (fixed or
learning limits: a gate per value; a ``Service``: that one shared object), else none (the
value is unlimited). A gate that is a ``Service`` also holds the value's pauses and, when
the service has a cooldown, its breaker; :class:`RoutedPauses` and :class:`RoutedBreakers`
send each value's pauses and breaker there, and keep the others with the function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Protocol

from opero.core.breaker import Ticket
from opero.core.pauses import Pauses
from opero.core.stats import Counters

if TYPE_CHECKING:
    from opero.core.holds import BreakerSet
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit

__all__ = ["Gate", "Route", "RoutedBreakers", "RoutedPauses", "SharedGate"]

_FREE = Ticket(0)  #: the ticket of a value without a breaker


class SharedGate(Protocol):
    """What a ``Service`` offers the values routed to it."""

    limiter: Limiter | None
    slots: RunningLimit | None
    pauses: Pauses
    breakers: BreakerSet | None


class Gate:
    """The budget of one fallback value: its limiter and concurrency cap, and the service
    holding its pauses and breaker (None: the function holds them)."""

    __slots__ = ("limiter", "service", "slots")

    def __init__(
        self,
        limiter: Limiter | None,
        slots: RunningLimit | None = None,
        service: SharedGate | None = None,
    ) -> None:
        self.limiter = limiter
        self.slots = slots
        self.service = service


class Route:
    """The gate of each fallback value, built on first use from the template."""

    __slots__ = ("_gates", "_lock", "_make", "services")

    def __init__(self, gates: dict[str, Gate], make: Callable[[str], Gate | None]) -> None:
        self._gates: dict[str, Gate | None] = dict(gates)
        #: ``make(key)``: the gate of a value not listed (from the ``"*"`` entry), or None
        self._make = make
        self._lock = threading.Lock()
        #: the services some value is routed to (their pauses are always consulted)
        self.services = {id(g.service): g.service for g in gates.values() if g.service}

    def gate(self, key: Hashable) -> Gate | None:
        """The gate of the value with key ``key`` (None: unlimited)."""
        assert isinstance(key, str)
        try:
            return self._gates[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._gates:
                self._gates[key] = self._make(key)
            return self._gates[key]

    def gates(self) -> dict[str, Gate]:
        """The gates built by now, by value key (values without a budget left out)."""
        with self._lock:
            return {k: g for k, g in self._gates.items() if g is not None}

    def service(self, key: Hashable) -> SharedGate | None:
        gate = self.gate(key) if key is not None else None
        return gate.service if gate is not None else None


class RoutedPauses(Pauses):
    """The function's pauses, except those of values whose gate is a service: those live in
    the service (as its own pause), seen by every function that uses it."""

    __slots__ = ("route",)

    def __init__(self, counters: Counters, max_delay: float, route: Route, **kw: Any) -> None:
        super().__init__(counters, max_delay, **kw)
        self.route = route
        self.active = True  # a service's pause may be set by another function

    def pause(self, key: Hashable, seconds: float) -> bool:
        service = self.route.service(key)
        if service is None:
            return super().pause(key, seconds)
        fresh = service.pauses.pause(None, seconds)
        if fresh:
            self.counters.pauses += 1
        return fresh

    def remaining(self, key: Hashable) -> float:
        service = self.route.service(key)
        if service is None:
            return super().remaining(key)
        return service.pauses.remaining(None)

    def _expire(self, now: float) -> None:
        super()._expire(now)
        self.active = True


class RoutedBreakers:
    """The breaker of each value: its service's (when the service has a cooldown), else the
    function's own (``own``, None: the value has none)."""

    __slots__ = ("own", "route")

    def __init__(self, own: BreakerSet | None, route: Route) -> None:
        self.own = own
        self.route = route

    def _of(self, key: Hashable) -> tuple[BreakerSet | None, Hashable]:
        service = self.route.service(key)
        if service is not None and service.breakers is not None:
            return service.breakers, None
        return self.own, key

    def admit(self, key: Hashable) -> Ticket | None:
        breakers, inner = self._of(key)
        return _FREE if breakers is None else breakers.admit(inner)

    def back_in(self, key: Hashable) -> float:
        breakers, inner = self._of(key)
        return 0.0 if breakers is None else breakers.back_in(inner)

    def failed(self, key: Hashable, ticket: Ticket | None = None) -> None:
        breakers, inner = self._of(key)
        if breakers is not None:
            breakers.failed(inner, None if ticket is _FREE else ticket)

    def succeeded(self, key: Hashable, ticket: Ticket | None = None) -> None:
        breakers, inner = self._of(key)
        if breakers is not None:
            breakers.succeeded(inner, None if ticket is _FREE else ticket)

    def release(self, key: Hashable, ticket: Ticket | None = None) -> None:
        breakers, inner = self._of(key)
        if breakers is not None:
            breakers.release(inner, None if ticket is _FREE else ticket)
