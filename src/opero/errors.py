"""Exception and warning types that opero defines.

Every error opero raises on its own account derives from :class:`OperoError`. The user's
own exceptions pass through unchanged; configuration mistakes raise ``ValueError`` or
``TypeError`` at decoration time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "AllFailedError",
    "Attempt",
    "CircuitOpenError",
    "DeadlineExceededError",
    "MapStoppedError",
    "OperoBackendWarning",
    "OperoError",
    "OperomapError",
    "RejectedResultError",
    "RemoteError",
    "UnpicklableError",
    "WorkerCrashedError",
]


class OperoError(Exception):
    """Base class of every error that opero itself raises."""


class Attempt(NamedTuple):
    """One failed attempt of a call, as :attr:`AllFailedError.attempts` lists them."""

    round: int  #: 1-based
    value: Any  #: the fallback value it was made with
    exception: BaseException


class AllFailedError(OperoError, ExceptionGroup):
    """Every fallback value of every round failed.

    An :class:`ExceptionGroup`: ``.exceptions`` holds each attempt's exception in the order
    the attempts were made, each with a note naming its round and fallback value
    (``round 2/4, model='b'``). ``except*`` works on it. ``.attempts`` is the same as a tuple
    of :class:`Attempt` records (``round``, ``value``, ``exception``) for programs to read.
    """

    attempts: tuple[Attempt, ...]

    def __new__(
        cls,
        message: str,
        exceptions: Sequence[Exception],
        attempts: Sequence[Attempt] = (),
    ) -> AllFailedError:
        self = super().__new__(cls, message, exceptions)
        self.attempts = tuple(attempts)
        return self

    def __init__(
        self, message: str, exceptions: Sequence[Exception], attempts: Sequence[Attempt] = ()
    ) -> None:
        super().__init__(message, exceptions)


class OperomapError(OperoError, ExceptionGroup):
    """One or more items of an ``@operomap`` call failed.

    ``.exceptions`` holds the failures (each with a note naming the item's index);
    ``.results`` is the full list of results in input order with each failed item's
    exception in its place, so no successful result is lost.
    """

    results: list[object]

    def __new__(
        cls, message: str, exceptions: Sequence[Exception], results: list[object] | None = None
    ) -> OperomapError:
        self = super().__new__(cls, message, exceptions)
        self.results = list(results) if results is not None else []
        return self

    def __init__(
        self, message: str, exceptions: Sequence[Exception], results: list[object] | None = None
    ) -> None:
        super().__init__(message, exceptions)

    def derive(self, excs: Sequence[Exception]) -> OperomapError:  # type: ignore[override]
        return OperomapError(self.message, excs, self.results)


class CircuitOpenError(OperoError):
    """Every fallback value of the call (or the function) is cooling down after repeated
    failures (``cooldown``): the function was not called. ``back_in`` maps each value's
    ``repr`` (``None`` without fallback) to the seconds until it may be tried again."""

    def __init__(self, message: str, back_in: dict[str | None, float]) -> None:
        super().__init__(message)
        self.back_in = back_in

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.back_in))


class DeadlineExceededError(OperoError, TimeoutError):
    """The call's time budget (``deadline=``, or an enclosing ``opero.deadline()``) ran out.

    A ``TimeoutError`` too, so ``except TimeoutError`` catches it. ``.attempts`` lists the
    failed attempts made before it ran out (as :attr:`AllFailedError.attempts` does); the
    last attempt's exception is its ``__cause__`` (None when no attempt ran).
    """

    def __init__(self, message: str, attempts: Sequence[Attempt] = ()) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.attempts))


class RejectedResultError(OperoError):
    """``retry_on_result`` rejected the result of an attempt; ``.value`` is that result."""

    def __init__(self, message: str, value: object) -> None:
        super().__init__(message)
        self.value = value

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.value))


class MapStoppedError(OperoError):
    """An ``@operomap`` item that was never started: the map stopped (``fail_fast``, or its
    deadline had passed). Its cause is the error that stopped the map, when there is one."""


class WorkerCrashedError(OperoError):
    """A worker process died (a segfault, ``os._exit``, a kill) while it ran this attempt."""


class UnpicklableError(OperoError):
    """An item, an argument or the function itself cannot be pickled to reach a worker
    process. Never retried: another attempt would fail the same way."""


class RemoteError(OperoError):
    """An exception raised in a worker process that could not cross back to the caller.

    Carries what the caller needs: ``type_name`` (the original exception's qualified type),
    ``message`` (its ``str``), ``remote_traceback`` (formatted in the worker) and
    ``retry_after`` (a server-directed delay read in the worker, or None), which opero's
    retry honours like the original's.
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        remote_traceback: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.remote_traceback = remote_traceback
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (self.type_name, self.message, self.remote_traceback, self.retry_after),
        )


class OperoBackendWarning(UserWarning):
    """A cache or rate-limit backend failed at run time; the call ran without it."""
