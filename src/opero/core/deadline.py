"""Deadlines: a time budget for a whole call, and its propagation to the calls made inside.

The budget travels in a context variable holding an absolute time on :data:`CLOCK`'s
monotonic clock. ``with opero.deadline(s):`` sets it for every opero call inside; a call of a
function decorated with ``deadline=`` sets the earlier of its own and the enclosing one
around the whole call (its cache lookup included), so the calls made inside its attempts —
on helper threads (which copy the context) and in async tasks — never outlive it.

The variable is read only once some deadline has been set in this process
(:data:`AMBIENT`), so programs that never use deadlines pay nothing on their fast paths.
"""

from __future__ import annotations

import math
from contextvars import ContextVar, Token
from types import TracebackType
from typing import TYPE_CHECKING

from opero.core.clock import CLOCK
from opero.errors import DeadlineExceededError

if TYPE_CHECKING:
    from opero.core.retry import Attempts

__all__ = ["AMBIENT", "DEADLINE", "Ambient", "current", "deadline", "expired", "left", "scope"]

#: the absolute deadline (``CLOCK.monotonic()`` time) of the calls made in this context
DEADLINE: ContextVar[float | None] = ContextVar("opero_deadline", default=None)


class Ambient:
    """Whether any deadline was ever set in this process (then calls read :data:`DEADLINE`),
    and whether telemetry is enabled for every function (``traced``, looked at only once
    ``on`` is set: :func:`opero.telemetry.enable` sets both)."""

    __slots__ = ("on", "traced")

    def __init__(self) -> None:
        self.on = False
        self.traced = False


AMBIENT = Ambient()


def current() -> float | None:
    """The deadline of calls made here (None: no budget)."""
    return DEADLINE.get() if AMBIENT.on else None


def left(at: float) -> float:
    """Seconds until ``at``."""
    return at - CLOCK.monotonic()


class scope:
    """Calls made inside have the deadline ``at`` (or the enclosing one, if earlier)."""

    __slots__ = ("at", "token")

    def __init__(self, at: float) -> None:
        self.at = at
        self.token: Token[float | None] | None = None

    def __enter__(self) -> float:
        AMBIENT.on = True
        outer = DEADLINE.get()
        at = self.at if outer is None or self.at < outer else outer
        self.token = DEADLINE.set(at)
        return at

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            DEADLINE.reset(self.token)
            self.token = None


class deadline:
    """A time budget of ``seconds`` for every opero call made inside the block (sync or
    async): waits that would cross it are not taken, attempts are cut at it, and calls
    raise :class:`~opero.DeadlineExceededError` when it is spent. Nested budgets: the
    earliest wins. Each ``with`` starts the clock anew; the object may be reused."""

    __slots__ = ("_scopes", "seconds")

    def __init__(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"deadline seconds must be a number > 0, got {seconds!r}")
        if math.isnan(seconds) or seconds <= 0 or seconds == math.inf:
            raise ValueError(f"deadline seconds must be a number > 0 (finite), got {seconds!r}")
        self.seconds = seconds
        self._scopes: list[scope] = []

    def __enter__(self) -> float:
        """Enter; returns the absolute deadline on the monotonic clock."""
        inner = scope(CLOCK.monotonic() + self.seconds)
        self._scopes.append(inner)
        return inner.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._scopes.pop().__exit__()

    async def __aenter__(self) -> float:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def expired(name: str, walk: Attempts | None) -> BaseException:
    """The ``DeadlineExceededError`` of a call whose budget ran out: the attempts made so
    far, the last one's exception as the cause."""
    records = walk.records if walk is not None else []
    cause = walk.errors[-1] if walk is not None and walk.errors else None
    error = DeadlineExceededError(
        f"{name}: the call's deadline passed after {len(records)} failed attempt(s)", records
    )
    error.__cause__ = cause
    error.__suppress_context__ = True
    return error
