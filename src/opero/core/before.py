"""Before an attempt: the part of the judge that says which fallback value the next attempt
uses and how long it must wait first (pauses, cooldowns, the deadline), and books its
rate-limit admission. :class:`~opero.core.judge.Judge` is built on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from loguru import logger

from opero.core.call import Booking, Call
from opero.core.clock import CLOCK
from opero.core.deadline import expired
from opero.core.holds import Holds
from opero.limit_spec import Limit, cost_of

if TYPE_CHECKING:
    from opero.core.fallback import Fallback
    from opero.core.pauses import Pauses
    from opero.core.retry import Attempts
    from opero.core.routes import Route
    from opero.core.stats import Counters
    from opero.core.watch import Watch
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit

__all__ = ["BeforeAttempt"]

RECHECK = 0.05  #: seconds: a wait for an admission that may move is re-checked no more often


class BeforeAttempt:
    """Gates and admissions of one decorated function's attempts."""

    name: str
    counters: Counters
    holds: Holds
    limiter: Limiter | None
    #: the limits the limiter books, and whether any is weighted (a cost per attempt)
    limits: tuple[Limit, ...]
    weighted: bool
    #: per fallback value: the budget each value answers to (None: the function's)
    route: Route | None
    #: ``fallback_strategy="spread"``: each attempt goes to the value admitted soonest
    spread: bool
    #: the concurrency cap of a service the whole function uses
    service_slots: RunningLimit | None
    #: something beside the function's own limits paces it (a service, per-value budgets)
    shared: bool
    fallback: Fallback | None
    pauses: Pauses
    slots: RunningLimit | None
    #: the hooks and observers told of each attempt, wait and give-up (None: none)
    watch: Watch | None
    _walk: Callable[[Call], Attempts]

    @property
    def paced(self) -> bool:
        """An attempt's admission is decided when it can start (rate limit, concurrency,
        cooldowns): a map sends an attempt only to a free worker, one at a time."""
        return (
            self.limiter is not None
            or self.slots is not None
            or self.holds.breakers is not None
            or self.shared
        )

    # ----- before an attempt ----------------------------------------------------------------
    def gate(self, call: Call) -> float:
        """Pauses and cooldowns: choose the value of the next attempt; return how long to
        wait first (0.0: go now; ask again after waiting: a pause may have grown). Raises
        when no value is left to try, or when the call's deadline would pass first."""
        if call.deadline is not None:
            self.time_left(call)
        if self.spread and call.values is not None:
            walk = self._walk(call)
            choice = self.holds.choose(walk, lambda n: self._soonest(call, n))
        elif not self.holds.active:
            return 0.0
        else:
            walk = self._walk(call)
            choice = self.holds.choose(walk, single=call.single)
        index, next_round, wait, call.ticket = choice
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

    def limiter_of(self, call: Call, index: int | None = None) -> Limiter | None:
        """The limiter of the next attempt (or of fallback position ``index``)."""
        route = self.route
        if route is None:
            return self.limiter
        key = call.key if index is None else Holds.key(call.values, index)
        gate = route.gate(key)
        return None if gate is None else gate.limiter

    def value_slots(self, call: Call) -> RunningLimit | None:
        """The concurrency cap of the value (or service) of the next attempt, taken after
        its value is chosen, besides the function's own (``concurrency=``)."""
        route = self.route
        if route is None:
            return self.service_slots
        gate = route.gate(call.key)
        return None if gate is None else gate.slots

    def _costs(self, limiter: Limiter, call: Call, index: int | None = None) -> list[float] | None:
        limits: tuple[Limit, ...] = limiter.limits if limiter is not self.limiter else self.limits
        if limiter is self.limiter and not self.weighted:
            return None
        if not any(limit.cost is not None for limit in limits):
            return None
        calls = call.calls
        if calls is None:
            args, kwargs = call.args, call.kwargs
        else:
            args, kwargs = calls[call.index if index is None else index]
        return [cost_of(limit, args, kwargs) for limit in limits]

    def _soonest(self, call: Call, index: int) -> float:
        """Seconds until fallback position ``index`` would be admitted (spread strategy)."""
        limiter = self.limiter_of(call, index)
        if limiter is None:
            return 0.0
        now = CLOCK.monotonic()
        return limiter.peek(now, self._costs(limiter, call, index)) - now

    def book(self, call: Call) -> Booking | None:
        """Book the rate-limit admission of the next attempt (None: it may start now)."""
        limiter = self.limiter_of(call)
        if limiter is None:
            return None
        costs = self._costs(limiter, call)
        if limiter.listens:
            call.limiter, call.costs = limiter, costs
        if CLOCK.zero_waits:
            return None
        now = CLOCK.monotonic()
        return self._booked(call, limiter, now, limiter.reserve(now, costs))

    async def book_async(self, call: Call) -> Booking | None:
        """:meth:`book` for async callers (a Redis limiter is awaited)."""
        limiter = self.limiter_of(call)
        if limiter is None or not hasattr(limiter, "reserve_async"):
            return self.book(call)
        costs = self._costs(limiter, call)
        if limiter.listens:
            call.limiter, call.costs = limiter, costs
        if CLOCK.zero_waits:
            return None
        now = CLOCK.monotonic()
        return self._booked(call, limiter, now, await limiter.reserve_async(now, costs))

    def _booked(self, call: Call, limiter: Limiter, now: float, at: float) -> Booking | None:
        if at <= now:
            call.sent = now
            return None
        logger.trace("{}: rate limit, waiting {:.3f}s", self.name, at - now)
        self.counters.waited(at - now)
        return self._waiting(call, limiter, now, at)

    def _waiting(self, call: Call, limiter: Limiter, now: float, at: float) -> Booking:
        """How long to sleep for the admission at ``at``: all the way, or, when the limiter
        moves admissions (a learned rate), half the way at most (then ask where it is)."""
        if call.deadline is not None and at >= call.deadline:  # it could not run: given back
            limiter.release(at)
            call.limiter = None
            raise self.expired(call)
        wait = at - now
        if hasattr(limiter, "moved") and wait > RECHECK:
            wait = max(RECHECK, wait / 2)
        return Booking(at, wait, limiter)

    def rebook(self, call: Call, booking: Booking) -> Booking | None:
        """The wait for ``booking`` ended: a further wait if its admission is not due yet
        (a learned rate moves the admissions booked ahead), else None."""
        limiter = booking.limiter
        moved = getattr(limiter, "moved", None)
        if moved is None:
            call.sent = CLOCK.monotonic()
            return None
        at, now = moved(booking.at), CLOCK.monotonic()
        if at <= now:
            call.sent = now
            return None
        if at > booking.at:
            self.counters.waited(at - booking.at)
        return self._waiting(call, limiter, now, at)

    def unbook(self, call: Call, booking: Booking) -> None:
        """The attempt was cancelled while it waited for its slot: give the slot back."""
        booking.limiter.release(booking.at)
        call.limiter = None

    # ----- what fast paths and workers report ------------------------------------------------
    def plain_started(self, count: int = 1) -> None:
        """``count`` calls made their first attempt on a fast path (each a call and an
        attempt, and a success unless it reaches :meth:`settle` as a failure)."""
        self.counters.direct += count

    def noticed(self, exc: BaseException) -> None:
        """A worker thread saw ``exc`` end an attempt, before the outcome reaches
        :meth:`settle`: a server delay on the function (no fallback) pauses every caller at
        once, before the other workers send theirs."""
        if self.fallback is None:
            self.pauses.server_said(exc)

    def held_back(self) -> float:
        """Seconds every attempt of the function must still wait (a pause of the function);
        the wait is counted."""
        pauses = self.pauses
        if not pauses.active or CLOCK.zero_waits:
            return 0.0
        wait = pauses.remaining(None)
        if wait > 0:
            self.counters.waited(wait)
        return max(wait, 0.0)

    # ----- the attempt starts -----------------------------------------------------------------
    def started(self, call: Call) -> None:
        """An attempt starts now."""
        self.counters.attempts += 1
        call.attempts += 1
        watch = self.watch
        if watch is not None:
            walk = call.walk
            value = call.values[call.index] if call.values is not None else None
            call.watching = watch.started(walk.round if walk else 1, value, call.attempts)

    def slept(self, reason: str, seconds: float) -> None:
        """The driver waited ``seconds`` before an attempt, for ``reason`` (``rate_limit``,
        ``concurrency``, ``pause``, ``backoff``)."""
        if self.watch is not None and seconds > 0:
            self.watch.waited(reason, seconds)
