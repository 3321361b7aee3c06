"""One call on its way through the judge, and the services the judge consults.

:class:`Services` is the state a decorated function shares with every caller (and, through
Redis, with other processes): its rate limiter, its concurrency limit, its cooldown breakers,
its shared pauses and its counters. Everything is given whole at construction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opero.core.fallback import Call as Expanded
from opero.core.stats import Counters

if TYPE_CHECKING:
    from opero.core.breaker import Ticket
    from opero.core.budget import Budget
    from opero.core.holds import BreakerSet
    from opero.core.pauses import SharedPauses
    from opero.core.retry import Attempts
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit

__all__ = ["Booking", "Call", "Services"]


class Services:
    """What the judge of one decorated function asks before an attempt and tells after
    (``pauses``: kept where other processes see them, besides this process's own)."""

    __slots__ = ("breakers", "budget", "counters", "limiter", "pauses", "slots")

    def __init__(
        self,
        counters: Counters | None = None,
        limiter: Limiter | None = None,
        slots: RunningLimit | None = None,
        breakers: BreakerSet | None = None,
        pauses: SharedPauses | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.counters = counters if counters is not None else Counters()
        self.budget = budget
        self.limiter = limiter
        self.slots = slots
        self.breakers = breakers
        self.pauses = pauses


class Call:
    """One call on its way through the judge: its arguments, the calls its fallback values
    make, the walk over rounds x values (made when first needed) and the arguments of the
    attempt being made."""

    __slots__ = (
        "args",
        "attempts",
        "calls",
        "deadline",
        "item",
        "kwargs",
        "plain",
        "ticket",
        "values",
        "walk",
        "watching",
    )

    def __init__(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
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

    @property
    def index(self) -> int:
        walk = self.walk
        return walk.index if walk is not None else 0

    def attempt_args(self) -> Expanded:
        """The positional and keyword arguments of the next attempt."""
        calls = self.calls
        return (self.args, self.kwargs) if calls is None else calls[self.index]


class Booking:
    """A rate-limit admission booked for an attempt: when it is admitted, and the wait till then."""

    __slots__ = ("at", "wait")

    def __init__(self, at: float, wait: float) -> None:
        self.at = at
        self.wait = wait
