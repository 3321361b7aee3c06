"""The judge: the one place that decides about the attempts of a decorated function.

Before an attempt it says which fallback value the attempt uses and how long to wait first
(pauses and cooldowns, :meth:`Judge.gate`), and books its rate-limit admission
(:meth:`Judge.book`); after it, :meth:`Judge.settle` says what the outcome means: return the
value, wait and try again, or raise. It is the only code that classifies outcomes, counts
attempts and their outcomes, and calls the retry and fallback hooks. It never sleeps: the
drivers (:mod:`opero.core.drive`, sync and async, used by ``@opero`` and by every map path)
loop ``gate -> book -> run -> settle`` and wait only where they are told.

:attr:`Judge.plain` is decided once, at decoration: with these options a first attempt
that succeeds needs no judgement and nothing is needed before it (no fallback, rate limit,
concurrency limit or cooldown). Such a first attempt may be made directly by the caller
(the fast paths); any other outcome of it goes to :meth:`settle`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from loguru import logger

from opero.core.call import Args, Call, Kwargs, Services
from opero.core.callables import is_async_callable
from opero.core.clock import CLOCK
from opero.core.deadline import current
from opero.core.fallback import Fallback
from opero.core.hedge_rules import Hedging
from opero.core.holds import Holds
from opero.core.retry import Attempts, Schedule
from opero.core.stats import success_key
from opero.core.verdicts import budget_spent, fits, may_retry, short_args
from opero.core.watch import Watch
from opero.limit_spec import Limit
from opero.options import retry_predicate, retry_types

if TYPE_CHECKING:
    from opero.options import OperoOptions

__all__ = ["Judge"]


class Judge(Hedging):
    """What happens to the attempts of one decorated function (one per decoration)."""

    def __init__(
        self,
        func: Callable[..., Any],
        options: OperoOptions,
        name: str,
        services: Services | None = None,
        holds: Holds | None = None,
    ) -> None:
        services = services if services is not None else Services()
        self.options = options
        #: what this judge shares with others of the same function (``with_options``)
        self.services = services
        self.func = func
        self.name = name
        self.is_async = is_async_callable(func)
        #: the exception types an attempt's failure is judged as (others end the call)
        self.retry_on = retry_types(options)
        #: a predicate ``retry_on`` decides alone; with types, the HTTP status rule applies
        self.predicate = retry_predicate(options)
        self.schedule = Schedule(
            retries=options["retries"],
            min_delay=options["min_delay"],
            backoff_factor=options["backoff_factor"],
            max_delay=options["max_delay"],
            jitter=options["jitter"],
        )
        arg_fallback = options["arg_fallback"]
        self.fallback = Fallback(func, arg_fallback) if arg_fallback else None
        self.limiter = services.limiter
        #: the limits the limiter books, and whether any is weighted (a cost per attempt)
        self.limits: tuple[Limit, ...] = getattr(self.limiter, "limits", ())
        self.weighted = any(limit.cost is not None for limit in self.limits)
        self.slots = services.slots
        self.counters = services.counters
        #: pauses and breakers (``holds``: those of another judge of the same function)
        self.holds = holds or Holds(
            name,
            self.counters,
            options["max_delay"],
            services.breakers,
            services.pauses,
            services.pausing,
        )
        self.route = services.route
        self.service_slots = services.service_slots
        #: something beside the function's own limits paces it (a service, per-value budgets)
        self.shared = self.route is not None or self.service_slots is not None
        self.spread = options["fallback_strategy"] == "spread"
        self.pauses = self.holds.pauses
        self.timeout: float | None = options["timeout"]
        self.on_retry = options["on_retry"]
        self.on_fallback = options["on_fallback"]
        #: the function's own time budget per call (seconds), or None
        self.deadline: float | None = options["deadline"]
        #: ``retry_on_result``: True rejects a result
        self.reject: Callable[[Any], object] | None = options["retry_on_result"]
        self.budget = services.budget
        #: seconds after which a slow attempt gets a hedge alongside (None: never), and
        #: how many hedges may run at once
        self.hedge: float | None = options["hedge"]
        self.hedge_max: int = options["hedge_max"]
        #: the hooks and observers told of each attempt, wait and give-up (None: none)
        self.watch = Watch.of(name, options)
        #: a first success needs no judgement, and nothing is needed before a first attempt
        self.plain = self._plain()

    def _plain(self) -> bool:
        """Nothing is needed before a first attempt, and its success needs no judgement."""
        needed = (
            self.fallback,
            self.limiter,
            self.slots,
            self.holds.breakers,
            self.deadline,
            self.reject,
            self.budget,
            self.watch,
            self.hedge,
        )
        return not self.shared and all(part is None for part in needed)

    # ----- a call ---------------------------------------------------------------------------
    def call(
        self,
        args: Args,
        kwargs: Kwargs,
        *,
        plain: bool = False,
        deadline: float | None = None,
        item: int | None = None,
    ) -> Call:
        """A call entering the judge; ``plain``: its first attempt was already made on a
        fast path (and counted there); ``deadline``: when its budget ends (default: the
        deadline of the context it is made in); ``item``: a map item's index."""
        if self.budget is not None:
            self.budget.deposit()
        at = deadline if deadline is not None else current()
        fallback = self.fallback
        expanded = fallback.expand(args, kwargs) if fallback is not None else None
        if expanded is None:
            call = Call(args, kwargs, None, None, plain, at)
            if self.route is not None:  # one value, with a budget of its own
                assert fallback is not None
                call.single = success_key(fallback.given(args, kwargs), True)
        else:
            call = Call(args, kwargs, expanded[0], expanded[1], plain, at)
        call.item = item
        return call

    def _walk(self, call: Call) -> Attempts:
        walk = call.walk
        if walk is None:
            param = self.fallback.param if self.fallback is not None else None
            walk = call.walk = Attempts(self.schedule, self.name, param, call.values, self.spread)
        return walk

    # ----- an attempt ------------------------------------------------------------------------
    def gave_up(self, call: Call, exc: BaseException) -> None:
        """The call ends with ``exc`` (said once, at WARNING, and to ``on_give_up``); not
        for arguments that do not fit the function."""
        if isinstance(exc, TypeError) and not fits(self.func, *call.attempt_args()):
            return
        what = "call" if call.item is None else f"item {call.item}"
        args = short_args(call.args, call.kwargs)
        logger.warning("{}: {} failed: {!r} ({})", self.name, what, exc, args)
        if self.watch is not None:
            self.watch.gave_up(exc, call.attempts)

    # ----- after an attempt -----------------------------------------------------------------
    def settle(self, call: Call, ok: bool, value: Any) -> float | None:
        """What the outcome of the attempt means: None to return ``value``, or the seconds
        to wait before the next attempt. Raises the exception that ends the call."""
        if call.limiter is not None:
            self._heard(call, ok, value)
        if ok:
            error = self._accepted(call, value)
            return None if error is None else self._failed(call, error)
        self._failed_plain(call)
        self._told(call, "timeout" if isinstance(value, TimeoutError) else "failure", value)
        if not isinstance(value, self.retry_on):
            self._ended(call, value)
            raise value
        return self._failed(call, value)

    def _accepted(self, call: Call, value: Any) -> BaseException | None:
        """A value returned by an attempt: None when it is the call's result (told and
        counted); the error of a rejected result (``retry_on_result``). A coroutine
        returned by a sync function is refused (raises)."""
        error = self._returned(call, value)
        if error is not None:
            return error
        self._succeeded(call)
        return None

    def _failed(self, call: Call, exc: BaseException) -> float:
        """A failure in ``retry_on``: the wait before the next attempt, or raise."""
        permanent = self._counted(call, exc)
        if permanent is None:
            raise exc
        walk = self._walk(call)
        if call.deadline is not None and CLOCK.monotonic() >= call.deadline:
            walk.record(exc)  # the budget ran out during this attempt: nothing follows it
            raise self.expired(call)
        round_ = walk.round
        may = may_retry(call.deadline, self.budget) if call.deadline or self.budget else None
        delay = walk.failed(exc, self.on_retry, self.on_fallback, permanent=permanent, may=may)
        if walk.round != round_:
            self.counters.retries += 1
        if walk.refused == "deadline":
            raise self.expired(call)
        if delay is None:
            self._give_up(walk, exc)
        return delay if not CLOCK.zero_waits else 0.0

    def _give_up(self, walk: Attempts, exc: BaseException) -> NoReturn:
        """No attempt follows ``exc``: raise the error the call ends with."""
        error = walk.error()
        if walk.refused == "budget":
            self.counters.budget_refusals += 1
            budget_spent(error, self.budget)
        if error is exc:
            raise exc
        raise error from None
