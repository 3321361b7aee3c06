"""Before an attempt: the part of the judge that says which fallback value the next attempt
uses and how long it must wait first (pauses, cooldowns, the deadline), and books its
rate-limit admission. :class:`~opero.core.judge.Judge` is built on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from loguru import logger

from opero.core.call import Booking, Call
from opero.core.clock import CLOCK
from opero.core.deadline import expired
from opero.rates import Limit, cost_of

if TYPE_CHECKING:
    from opero.core.holds import Holds
    from opero.core.retry import Attempts
    from opero.core.stats import Counters
    from opero.limits.base import Limiter

__all__ = ["BeforeAttempt"]


class BeforeAttempt:
    """Gates and admissions of one decorated function's attempts."""

    name: str
    counters: Counters
    holds: Holds
    limiter: Limiter | None
    #: the limits the limiter books, and whether any is weighted (a cost per attempt)
    limits: tuple[Limit, ...]
    weighted: bool
    _walk: Callable[[Call], Attempts]

    def gate(self, call: Call) -> float:
        """Pauses and cooldowns: choose the value of the next attempt; return how long to
        wait first (0.0: go now; ask again after waiting: a pause may have grown). Raises
        when no value is left to try, or when the call's deadline would pass first."""
        if call.deadline is not None:
            self.time_left(call)
        if not self.holds.active:
            return 0.0
        walk = self._walk(call)
        index, next_round, wait, call.ticket = self.holds.choose(walk)
        walk.move(index, next_round)
        if wait <= 0 or CLOCK.zero_waits:
            return 0.0
        if call.deadline is not None:
            self.time_left(call, wait)
        self.counters.waited(wait)
        return wait

    def time_left(self, call: Call, wait: float = 0.0) -> float:
        """Seconds left of the call's budget after waiting ``wait``; raises
        ``DeadlineExceededError`` when none would be."""
        assert call.deadline is not None
        left = call.deadline - CLOCK.monotonic() - wait
        if left <= 0:
            raise self.expired(call)
        return left

    def expired(self, call: Call) -> BaseException:
        """The error of a call whose deadline passed (counted)."""
        self.counters.deadlines += 1
        return expired(self.name, call.walk)

    def waited(self, seconds: float) -> None:
        """The driver waited ``seconds`` for a concurrency slot."""
        if seconds > 0:
            self.counters.waited(seconds)

    def _costs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[float] | None:
        if not self.weighted:
            return None
        return [cost_of(limit, args, kwargs) for limit in self.limits]

    def book(self, call: Call) -> Booking | None:
        """Book the rate-limit admission of the next attempt (None: it may start now)."""
        limiter = self.limiter
        if limiter is None:
            return None
        costs = self._costs(*call.attempt_args())
        if CLOCK.zero_waits:
            return None
        now = CLOCK.monotonic()
        return self._booked(call, now, limiter.reserve(now, costs))

    async def book_async(self, call: Call) -> Booking | None:
        """:meth:`book` for async callers (a Redis limiter is awaited)."""
        limiter = self.limiter
        if limiter is None or not hasattr(limiter, "reserve_async"):
            return self.book(call)
        costs = self._costs(*call.attempt_args())
        if CLOCK.zero_waits:
            return None
        now = CLOCK.monotonic()
        return self._booked(call, now, await limiter.reserve_async(now, costs))

    def _booked(self, call: Call, now: float, at: float) -> Booking | None:
        if at <= now:
            return None
        if call.deadline is not None and at >= call.deadline:  # it could not run: given back
            assert self.limiter is not None
            self.limiter.release(at)
            raise self.expired(call)
        logger.trace("{}: rate limit, waiting {:.3f}s", self.name, at - now)
        self.counters.waited(at - now)
        return Booking(at, at - now)

    def unbook(self, booking: Booking) -> None:
        """The attempt was cancelled while it waited for its slot: give the slot back."""
        assert self.limiter is not None
        self.limiter.release(booking.at)
