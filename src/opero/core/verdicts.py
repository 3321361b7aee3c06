"""The judge's small verdicts, apart from its state: does a ``TypeError`` come from the
call itself, does the ``retry_on`` predicate say retry, may a failed round be retried
(deadline, retry budget), and the error of a rejected result."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opero.core.clock import CLOCK
from opero.core.retry import add_note_once
from opero.core.signals import http_status
from opero.errors import RejectedResultError

if TYPE_CHECKING:
    from opero.core.budget import Budget

__all__ = [
    "budget_spent",
    "fits",
    "kind_of",
    "may_retry",
    "predicate_says_retry",
    "rejected",
    "short_args",
]


def fits(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether the arguments bind to the function's signature (asked only after an
    attempt raised ``TypeError``, so the success path never pays for it)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # no signature to check against
        return True
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def predicate_says_retry(predicate: Callable[[BaseException], bool], exc: BaseException) -> bool:
    """The ``retry_on`` predicate's answer; one that raises says no (noted on ``exc``)."""
    try:
        return bool(predicate(exc))
    except Exception as err:  # a broken predicate: the user's exception, noted
        add_note_once(exc, f"opero: the retry_on predicate raised {err!r}; not retried")
        return False


def may_retry(at: float | None, budget: Budget | None) -> Callable[[float], str | None]:
    """Whether a failed round may be retried after ``delay``: None, or why not (the wait
    would end after the deadline ``at``; the retry budget is spent)."""

    def may(delay: float) -> str | None:
        if at is not None and CLOCK.monotonic() + delay >= at:
            return "deadline"
        if budget is not None and not budget.withdraw():
            return "budget"
        return None

    return may


def budget_spent(error: BaseException, budget: Budget | None) -> None:
    """Say on ``error`` that its call was not retried because the budget was spent."""
    policy = budget.policy if budget is not None else None
    add_note_once(error, f"opero: not retried: the retry budget is spent ({policy})")


def rejected(name: str, value: Any) -> RejectedResultError:
    """The failure of an attempt whose result ``retry_on_result`` rejected."""
    import reprlib

    message = f"{name}: retry_on_result rejected the result {reprlib.repr(value)}"
    return RejectedResultError(message, value)


def kind_of(exc: BaseException) -> str:
    """The kind of a failure in ``stats().errors``: its class, with its HTTP status."""
    status = http_status(exc)
    name = type(exc).__name__
    return name if status is None else f"{name} {status}"


def short_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """A short account of a call's arguments, for a log line."""
    import reprlib

    short = reprlib.Repr()
    short.maxstring = short.maxother = 40
    short.maxlist = short.maxtuple = short.maxdict = 4
    parts = [short.repr(a) for a in args] + [f"{k}={short.repr(v)}" for k, v in kwargs.items()]
    return "args: " + ", ".join(parts)[:200]
