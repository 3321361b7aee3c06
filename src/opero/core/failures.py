"""What the judge does with an attempt's outcome before deciding what follows: the outcome
is heard by the limiter that admitted it, told to the attempt's observers, and a failure
is counted and told to pauses and breakers. :class:`~opero.core.judge.Judge` is built on it
(through :class:`~opero.core.hedge_rules.Hedging`), so a single attempt and an attempt
beside others (a hedge) are judged by the same rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opero.core.before import BeforeAttempt
from opero.core.call import Call
from opero.core.callables import CoroutineType, refuse_awaitable
from opero.core.retry import NEVER_RETRY
from opero.core.signals import retry_after_of, transient_status
from opero.core.verdicts import fits, kind_of, predicate_says_retry, rejected
from opero.errors import RejectedResultError, UnpicklableError

__all__ = ["FINAL", "FailureRules", "marked_final"]

#: ends the call at once: never retried, never a fallback
FINAL: tuple[type[BaseException], ...] = (*NEVER_RETRY, UnpicklableError)


def marked_final(exc: BaseException) -> bool:
    """Refused in a worker (a coroutine returned by a sync function): ends the call as it
    would have in the caller."""
    return bool(getattr(exc, "__opero_final__", False))


class FailureRules(BeforeAttempt):
    """How one outcome is heard, told and counted."""

    func: Callable[..., Any]
    is_async: bool
    #: a predicate ``retry_on`` decides alone; with types, the HTTP status rule applies
    predicate: Callable[[BaseException], bool] | None
    #: ``retry_on_result``: True rejects a result
    reject: Callable[[Any], object] | None

    def _heard(self, call: Call, ok: bool, value: Any) -> None:
        """The limiter that admitted the attempt learns its outcome (``Limit(actual=)``,
        ``Adaptive``)."""
        limiter, call.limiter = call.limiter, None
        sent, call.sent = call.sent, None
        limiter.heard(ok, value, call.costs, sent)  # type: ignore[union-attr]

    def _told(self, call: Call, outcome: str, error: BaseException | None) -> None:
        """The attempt's observers learn how it ended."""
        tokens = call.watching
        if tokens is not None:
            call.watching = None
            assert self.watch is not None
            self.watch.ended(tokens, outcome, error)

    def _rejects(self, call: Call, value: Any) -> bool:
        """``retry_on_result`` says no to ``value``; a predicate that raises ends the call
        with its error."""
        assert self.reject is not None
        try:
            return bool(self.reject(value))
        except BaseException as exc:
            self._told(call, "failure", exc)
            self.holds.abandoned(call.key, call.ticket)
            raise

    def _returned(self, call: Call, value: Any) -> BaseException | None:
        """A value an attempt returned: None when it is the call's result (told, and its
        value's pauses and breakers hear the success; the caller counts it); the error of a
        rejected result (``retry_on_result``). A coroutine returned by a sync function is
        refused (raises)."""
        if type(value) is CoroutineType and not self.is_async:  # a misdeclared async def
            self._failed_plain(call)
            self._told(call, "failure", None)
            refuse_awaitable(self.name, value)
        if self.reject is not None and self._rejects(call, value):
            self._failed_plain(call)
            self.counters.rejected += 1
            error = rejected(self.name, value)
            self._told(call, "rejected", error)
            return error
        self._told(call, "success", None)
        self.holds.succeeded(call.key, call.ticket)
        return None

    def _succeeded(self, call: Call) -> None:
        """Count the success of the call's attempt: once (a plain call's first attempt was
        counted on the fast path), with no fallback in play when one value was given."""
        if call.plain:
            call.plain = False
        elif call.values is None:  # (a single value is counted as no fallback)
            self.counters.plain_ok += 1
        else:
            self.counters.success(call.key)

    def _failed_plain(self, call: Call) -> None:
        """A call first counted as a plain success on the fast path failed after all."""
        if call.plain:
            call.plain = False
            self.counters.direct_failed += 1

    def _ended(self, call: Call, exc: BaseException) -> None:
        """An attempt raised outside ``retry_on``: a failure for pauses and cooldowns (an
        ``Exception``), or no outcome at all (cancelled, interrupted)."""
        key = call.key
        if isinstance(exc, Exception):
            self.counters.failures += 1
            self.counters.error(kind_of(exc))
            self.holds.failed(key, retry_after_of(exc), call.ticket)
        else:
            self.holds.abandoned(key, call.ticket)

    def _counted(self, call: Call, exc: BaseException) -> bool | None:
        """A failure in ``retry_on``: counted and told to pauses and breakers unless it
        ends the call as it is (None: raise ``exc`` unchanged); else whether it is
        permanent for its value (an HTTP status that no retry will change)."""
        if marked_final(exc):
            return None
        if isinstance(exc, FINAL):  # never retried, even when retry_on names it
            self._ended(call, exc)  # (a cancelled half-open probe is given back)
            return None
        counters = self.counters
        counters.failures += 1
        counters.error(kind_of(exc))
        # every caller holds back this value (server delay, cooldown), retried or not
        self.holds.failed(call.key, retry_after_of(exc), call.ticket)
        if isinstance(exc, TypeError) and not fits(self.func, *call.attempt_args()):
            return None  # the call itself is wrong: Python's own TypeError, at once
        if type(exc) is RejectedResultError:
            return False  # a rejected result: always a failure to retry
        if self.predicate is not None:  # not for retrying: propagates at once, unchanged
            return False if predicate_says_retry(self.predicate, exc) else None
        return transient_status(exc) is False  # e.g. a 404: no more rounds for it
