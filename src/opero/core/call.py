"""One call on its way through the judge, and the services the judge consults.

:class:`Services` is the state a decorated function shares with every caller (and, through
Redis, with other processes): its rate limiter, its concurrency limit, its cooldown breakers,
its shared pauses and its counters. Everything is given whole at construction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opero.core.fallback import Call as Expanded
from opero.core.stats import Counters, success_key

if TYPE_CHECKING:
    from opero.core.breaker import Ticket
    from opero.core.budget import Budget
    from opero.core.holds import BreakerSet
    from opero.core.pauses import Pauses, SharedPauses
    from opero.core.retry import Attempts
    from opero.core.routes import Route
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit

__all__ = ["Args", "AsyncInvoke", "Booking", "Call", "Invoke", "Kwargs", "Outcome", "Services"]

#: the positional and keyword arguments of one call of a decorated function
Args = tuple[Any, ...]
Kwargs = dict[str, Any]
#: how one attempt runs (sync, async): the function's value
Invoke = Callable[[Args, Kwargs], Any]
AsyncInvoke = Callable[[Args, Kwargs], Awaitable[Any]]
#: the outcome of one attempt: (True, its value) or (False, its exception)
Outcome = tuple[bool, Any]


class Services:
    """What the judge of one decorated function asks before an attempt and tells after
    (``pauses``: kept where other processes see them, besides this process's own)."""

    __slots__ = (
        "breakers",
        "budget",
        "counters",
        "limiter",
        "pauses",
        "pausing",
        "route",
        "service_slots",
        "slots",
    )

    def __init__(
        self,
        counters: Counters | None = None,
        limiter: Limiter | None = None,
        slots: RunningLimit | None = None,
        breakers: BreakerSet | None = None,
        pauses: SharedPauses | None = None,
        budget: Budget | None = None,
        *,
        pausing: Pauses | None = None,
        route: Route | None = None,
        service_slots: RunningLimit | None = None,
    ) -> None:
        self.counters = counters if counters is not None else Counters()
        self.budget = budget
        self.limiter = limiter
        self.slots = slots
        self.breakers = breakers
        self.pauses = pauses
        #: the pauses the function uses, if not its own (a service's, or routed per value)
        self.pausing = pausing
        #: per fallback value: each value's limiter, concurrency cap, pauses and breaker
        self.route = route
        #: the concurrency cap of the service the whole function uses (beside its own)
        self.service_slots = service_slots


class Call:
    """One call on its way through the judge: its arguments, the calls its fallback values
    make, the walk over rounds x values (made when first needed) and the arguments of the
    attempt being made."""

    __slots__ = (
        "args",
        "attempts",
        "calls",
        "costs",
        "deadline",
        "item",
        "kwargs",
        "limiter",
        "plain",
        "sent",
        "single",
        "ticket",
        "values",
        "walk",
        "watching",
    )

    def __init__(
        self,
        args: Args,
        kwargs: Kwargs,
        values: list[object] | None,
        calls: list[Expanded] | None,
        plain: bool,
        deadline: float | None = None,
    ) -> None:
        self.args = args
        #: when the call's time budget ends (``CLOCK.monotonic()`` time), or None
        self.deadline = deadline
        #: in a map: the item's index (for what is said of it), else None
        self.item: int | None = None
        self.kwargs = kwargs
        self.values = values
        self.calls = calls
        self.walk: Attempts | None = None
        #: the first attempt was made on a fast path (counted there as a plain call)
        self.plain = plain
        #: the cooldown breaker's ticket of the attempt being made (None without cooldowns)
        self.ticket: Ticket | None = None
        #: attempts started (a fast path's first attempt included)
        self.attempts = 1 if plain else 0
        #: what the observers of the attempt being made gave back (None: not watched)
        self.watching: list[Any] | None = None
        #: the limiter that admitted the attempt being made, if it hears outcomes, and the
        #: units booked for it per limit (None: one each)
        self.limiter: Limiter | None = None
        self.costs: list[float] | None = None
        #: when that limiter admitted it (``CLOCK.monotonic()``; None: not known)
        self.sent: float | None = None
        #: the key of the one fallback value of a call that gives no list of them, when
        #: values have budgets of their own (else None)
        self.single: str | None = None

    @property
    def index(self) -> int:
        walk = self.walk
        return walk.index if walk is not None else 0

    @property
    def key(self) -> str | None:
        """The key of the next attempt's value (pauses, breakers and budgets go by it)."""
        values = self.values
        if values is None:
            return self.single
        walk = self.walk
        return success_key(values[walk.index if walk is not None else 0], True)

    def attempt_args(self) -> Expanded:
        """The positional and keyword arguments of the next attempt."""
        calls = self.calls
        return (self.args, self.kwargs) if calls is None else calls[self.index]


class Booking:
    """A rate-limit admission booked for an attempt: when it is admitted, the wait till
    then, and the limiter that booked it."""

    __slots__ = ("at", "limiter", "wait")

    def __init__(self, at: float, wait: float, limiter: Limiter) -> None:
        self.at = at
        self.wait = wait
        self.limiter = limiter
