"""The drivers: retry -> fallback -> rate limit -> call, once sync and once async.

Everything decided at decoration time lives in :class:`Pipeline`; the decision objects
(:class:`~opero.core.retry.Attempts`, :class:`~opero.core.fallback.Fallback`, and the
limiter it is given, a :class:`~opero.limits.base.Limiter`) say what to do, and only
:meth:`Pipeline.run` and :meth:`Pipeline.run_async` sleep or await. No retry machinery is
built until an attempt fails. The async driver takes the attempt as a parameter
(``invoke``) so that a map can hand each attempt to an executor while cache, rate limit and
waiting stay in the caller.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from opero.core.admission import Admission
from opero.core.callables import refuse_awaitable
from opero.core.clock import CLOCK
from opero.core.fallback import Call, Fallback
from opero.core.gates import Gates
from opero.core.retry import NEVER_RETRY, Attempts, Schedule, add_note_once
from opero.core.signals import retry_after_of, transient_status
from opero.core.stats import Counters, success_key
from opero.core.timeout import call_with_timeout, timeout_error
from opero.errors import UnpicklableError
from opero.options import retry_predicate, retry_types
from opero.rates import Limit

if TYPE_CHECKING:
    from opero.limits.base import Limiter
    from opero.limits.concurrency import Slots
    from opero.options import OperoOptions

__all__ = ["AsyncInvoke", "Pipeline"]

#: ends the call at once: never retried, never a fallback
_FINAL: tuple[type[BaseException], ...] = (*NEVER_RETRY, UnpicklableError)

AsyncInvoke = Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[Any]]


class Pipeline(Admission):
    """The uncached part of one decorated function: rounds x values, each rate-limited."""

    def __init__(
        self,
        func: Callable[..., Any],
        options: OperoOptions,
        name: str,
        limiter: Limiter | None = None,
        slots: Slots | None = None,
    ) -> None:
        self.func = func
        self.name = name
        self.retry_on = retry_types(options)
        #: a predicate ``retry_on`` decides alone; with types, the HTTP status rule applies
        self.predicate = retry_predicate(options)
        self.schedule = Schedule(
            retries=options["retries"],
            min_delay=options["min_delay"],
            backoff_factor=options["backoff_factor"],
            max_delay=options["max_delay"],
            jitter=options["jitter"],
            retry_on=self.retry_on,
        )
        arg_fallback = options["arg_fallback"]
        self.fallback = Fallback(func, arg_fallback) if arg_fallback else None
        self.limiter: Any = limiter
        #: the limits the limiter books, and whether any is weighted (a cost per attempt)
        self.limits: tuple[Limit, ...] = getattr(limiter, "limits", ())
        self.weighted = any(limit.cost is not None for limit in self.limits)
        #: ``concurrency``: attempts running at once
        self.slots = slots
        #: what happened (``stats()``, ``cache_info()``)
        self.counters = Counters()
        #: server-directed pauses and cooldowns shared by every caller (SPEC 2.7)
        self.gates = Gates(
            name,
            self.counters,
            options["max_delay"],
            options["cooldown"],
            options["cooldown_after"],
        )
        self.pauses = self.gates.pauses
        #: the limiter has a native async reservation (Redis)
        self.async_limiter = hasattr(self.limiter, "reserve_async")
        self.timeout = options["timeout"]
        self.on_retry = options["on_retry"]
        self.on_fallback = options["on_fallback"]
        #: nothing to do before the first attempt: the decorator may call the function directly
        free = (
            self.fallback is None
            and self.limiter is None
            and slots is None
            and self.gates.breakers is None
        )
        self.direct = free and self.timeout is None
        #: the first attempt needs no fallback expansion, no rate-limit and no concurrency slot
        self.direct_first = free

    # ----- shared decisions -------------------------------------------------------------
    def _expand(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[object] | None, list[Call] | None]:
        expanded = self.fallback.expand(args, kwargs) if self.fallback is not None else None
        return expanded if expanded is not None else (None, None)

    def _attempts(self, values: list[object] | None) -> Attempts:
        param = self.fallback.param if self.fallback is not None else None
        return Attempts(self.schedule, self.name, param, values)

    def _after(
        self,
        attempts: Attempts,
        exc: BaseException,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> float:
        """The wait before the next attempt; raises when ``exc`` ends the call."""
        counters = self.counters
        counters.failures += 1
        if isinstance(exc, _FINAL):
            raise exc  # never retried (another attempt would fail the same way)
        # every caller holds back this value (server delay, cooldown), retried or not
        self.gates.failed(Gates.key(attempts.values, attempts.index), retry_after_of(exc))
        if isinstance(exc, TypeError) and not self._fits(args, kwargs):
            raise exc  # the call itself is wrong: Python's own TypeError, at once
        round_ = attempts.round
        permanent = False
        if self.predicate is not None:
            if not self._predicate_says_retry(exc):
                raise exc  # not for retrying: propagates at once, unchanged
        else:
            permanent = transient_status(exc) is False  # e.g. a 404: no more rounds for it
        delay = attempts.failed(exc, self.on_retry, self.on_fallback, permanent=permanent)
        if attempts.round != round_:
            counters.retries += 1
        if delay is None:
            error = attempts.error()
            if error is exc:
                raise exc
            raise error from None
        return delay

    def _gate(
        self, attempts: Attempts | None, values: list[object] | None
    ) -> tuple[Attempts, float]:
        """Pauses and cooldowns: the value the next attempt uses, and the wait before it."""
        if attempts is None:
            attempts = self._attempts(values)
        return attempts, self.gates.choose(attempts)

    def _predicate_says_retry(self, exc: BaseException) -> bool:
        assert self.predicate is not None
        try:
            return bool(self.predicate(exc))
        except Exception as err:  # a broken predicate: the user's exception, noted
            add_note_once(exc, f"opero: the retry_on predicate raised {err!r}; not retried")
            return False

    def _fits(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether the arguments bind to the function's signature (asked only after an
        attempt raised ``TypeError``, so the success path never pays for it)."""
        try:
            signature = inspect.signature(self.func)
        except (TypeError, ValueError):  # no signature to check against
            return True
        try:
            signature.bind(*args, **kwargs)
        except TypeError:
            return False
        return True

    def _ended(
        self, exc: BaseException, values: list[object] | None, attempts: Attempts | None
    ) -> None:
        """An attempt raised outside ``retry_on``: a failure for pauses and cooldowns (an
        ``Exception``), or no outcome at all (cancelled, interrupted)."""
        key = Gates.key(values, attempts.index if attempts is not None else 0)
        if isinstance(exc, Exception):
            self.counters.failures += 1
            self.gates.failed(key, retry_after_of(exc))
        else:
            self.gates.abandoned(key)

    def _succeeded(self, values: list[object] | None, attempts: Attempts | None) -> None:
        self.gates.succeeded(Gates.key(values, attempts.index if attempts is not None else 0))
        if values is None:
            self.counters.success(None)
        else:
            value = values[attempts.index if attempts is not None else 0]
            self.counters.success(success_key(value, True))

    # ----- sync driver --------------------------------------------------------------------
    def invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.timeout is None:
            return self.func(*args, **kwargs)
        return call_with_timeout(self.func, args, kwargs, self.timeout, self.name)

    def run(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        failure: BaseException | None = None,
    ) -> Any:
        """Run the call to its end; ``failure`` is the first attempt's exception if it was
        already made (the decorator's fast path)."""
        values, calls = self._expand(args, kwargs)
        attempts: Attempts | None = None
        exc = failure
        a, k = args, kwargs
        while True:
            if exc is None:
                slots = self.slots
                if slots is not None:
                    self._acquire(slots)
                try:
                    while self.gates.active:  # decided when the attempt can start
                        attempts, wait = self._gate(attempts, values)
                        if wait <= 0 or CLOCK.zero_waits:
                            break
                        self.counters.waited(wait)
                        CLOCK.sleep(wait)  # then choose again: a pause may have grown
                    i = attempts.index if attempts else 0
                    a, k = (args, kwargs) if calls is None else calls[i]
                    slot = self._reserve(a, k)
                    if slot is not None:
                        try:
                            CLOCK.sleep(slot[1])
                        except BaseException:
                            self.limiter.release(slot[0])
                            raise
                    self.counters.attempts += 1
                    try:
                        value = self.invoke(a, k)
                    except self.retry_on as e:
                        exc = e
                    except BaseException as e:
                        self._ended(e, values, attempts)
                        raise
                    else:
                        if inspect.isawaitable(value):
                            refuse_awaitable(self.name, value)
                        self._succeeded(values, attempts)
                        return value
                finally:
                    if slots is not None:
                        slots.release()
            if attempts is None:
                attempts = self._attempts(values)
            delay = self._after(attempts, exc, a, k)
            exc = None
            if delay > 0 and not CLOCK.zero_waits:
                CLOCK.sleep(delay)

    # ----- async driver -------------------------------------------------------------------
    async def invoke_async(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await self.func(*args, **kwargs)

    async def _invoke_timed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        assert self.timeout is not None
        scope = asyncio.timeout(self.timeout)
        try:
            async with scope:
                return await self.func(*args, **kwargs)
        except TimeoutError as exc:
            if scope.expired():
                raise timeout_error(self.name, self.timeout) from exc
            raise

    async def run_async(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        failure: BaseException | None = None,
        invoke: AsyncInvoke | None = None,
        gate: asyncio.Semaphore | None = None,
    ) -> Any:
        """The async twin of :meth:`run`; ``invoke`` runs one attempt (default: await the
        function, under ``asyncio.timeout`` when ``timeout`` is set). With ``gate`` (a map's
        free workers), an attempt first takes a free worker, and only then books its
        rate-limit slot: a slot is never booked for an attempt that would then wait for a
        worker, so busy workers never cause a burst when they free up."""
        if invoke is None:
            invoke = self.invoke_async if self.timeout is None else self._invoke_timed
        values, calls = self._expand(args, kwargs)
        attempts: Attempts | None = None
        exc = failure
        a, k = args, kwargs
        while True:
            if exc is None:
                slots = self.slots
                if slots is not None:
                    await self._acquire_async(slots)
                if gate is not None:
                    try:
                        await gate.acquire()
                    except BaseException:
                        if slots is not None:
                            slots.release()
                        raise
                try:
                    while self.gates.active:  # decided when the attempt can start
                        attempts, wait = self._gate(attempts, values)
                        if wait <= 0 or CLOCK.zero_waits:
                            break
                        self.counters.waited(wait)
                        await CLOCK.async_sleep(wait)  # then again: a pause may have grown
                    i = attempts.index if attempts else 0
                    a, k = (args, kwargs) if calls is None else calls[i]
                    slot = await self._reserve_async(a, k)
                    if slot is not None:
                        try:
                            await CLOCK.async_sleep(slot[1])
                        except BaseException:
                            self.limiter.release(slot[0])
                            raise
                    self.counters.attempts += 1
                    try:
                        value = await invoke(a, k)
                    except self.retry_on as e:
                        exc = e
                    except BaseException as e:
                        self._ended(e, values, attempts)
                        raise
                    else:
                        self._succeeded(values, attempts)
                        return value
                finally:
                    if gate is not None:
                        gate.release()
                    if slots is not None:
                        slots.release()
            if attempts is None:
                attempts = self._attempts(values)
            delay = self._after(attempts, exc, a, k)
            exc = None
            if delay > 0 and not CLOCK.zero_waits:
                await CLOCK.async_sleep(delay)
