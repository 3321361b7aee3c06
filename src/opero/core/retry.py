"""Retry decisions: the backoff schedule, server-directed delays, and the walk over
rounds x fallback values. Nothing here sleeps; the drivers in :mod:`opero.core.drive`
act on what these objects decide."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from opero.core.signals import retry_after_of
from opero.errors import AllFailedError, Attempt

__all__ = [
    "NEVER_RETRY",
    "Attempts",
    "Schedule",
    "add_note_once",
    "backoff_delay",
    "retry_after_of",
]

#: Never retried or turned into a fallback, whatever ``retry_on`` says.
NEVER_RETRY: tuple[type[BaseException], ...] = (
    asyncio.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)

JITTER = 0.25  #: each delay is spread uniformly within +-25 %


def backoff_delay(k: int, min_delay: float, backoff_factor: float, max_delay: float) -> float:
    """Delay before retry ``k`` (1-based): ``min(max_delay, min_delay * factor ** (k - 1))``."""
    try:
        raw = min_delay * backoff_factor ** (k - 1)
    except OverflowError:
        return max_delay
    return min(max_delay, raw)


def jittered(delay: float, max_delay: float, rand: Callable[[], float] | None = None) -> float:
    """``delay`` spread uniformly within +-25 %, never above ``max_delay``."""
    if rand is None:
        import random

        rand = random.random
    return min(max_delay, delay * (1 - JITTER + 2 * JITTER * rand()))


class Schedule:
    """The retry policy of one decorated function (validated options)."""

    __slots__ = ("backoff_factor", "jitter", "max_delay", "min_delay", "retries")

    def __init__(
        self,
        *,
        retries: int,
        min_delay: float,
        backoff_factor: float,
        max_delay: float,
        jitter: bool,
    ) -> None:
        self.retries = retries
        self.min_delay = min_delay
        self.backoff_factor = backoff_factor
        self.max_delay = max_delay
        self.jitter = jitter

    def delay(
        self, k: int, retry_after: float | None = None, rand: Callable[[], float] | None = None
    ) -> float:
        """Seconds to wait before retry ``k``; a server-directed delay wins, capped, unjittered."""
        if retry_after is not None:
            return min(self.max_delay, retry_after)
        base = backoff_delay(k, self.min_delay, self.backoff_factor, self.max_delay)
        return jittered(base, self.max_delay, rand) if self.jitter else base


class Attempts:
    """The walk over rounds x fallback values of one call, after its first failure.

    :meth:`failed` records a failed attempt and answers what to do next: the delay before
    the next attempt (``0.0`` for the next fallback value within a round) or ``None`` when
    nothing is left, after which :meth:`error` is the exception to raise.
    """

    __slots__ = (
        "_hint",
        "dead",
        "errors",
        "index",
        "name",
        "param",
        "records",
        "refused",
        "round",
        "schedule",
        "spread",
        "tried",
        "values",
    )

    def __init__(
        self,
        schedule: Schedule,
        name: str,
        param: str | None = None,
        values: Sequence[object] | None = None,
        spread: bool = False,
    ) -> None:
        self.schedule = schedule
        #: the spread strategy: after a failure, any value not yet failed in this round
        self.spread = spread
        #: fallback positions that failed in this round
        self.tried: set[int] = set()
        self.name = name
        self.param = param
        self.values = values  # None: no fallback in play
        self.round = 1
        self.index = 0
        self.errors: list[BaseException] = []
        self.records: list[Attempt] = []
        self._hint: float | None = None
        #: fallback positions that failed permanently (no more rounds for them)
        self.dead: set[int] = set()
        #: why the last failed round was not retried although rounds were left, or None
        self.refused: str | None = None

    @property
    def rounds(self) -> int:
        return self.schedule.retries + 1

    def failed(
        self,
        exc: BaseException,
        on_retry: Callable[[Any], object] | None = None,
        on_fallback: Callable[[Any], object] | None = None,
        *,
        permanent: bool = False,
        may: Callable[[float], str | None] | None = None,
    ) -> float | None:
        """Record ``exc`` as the outcome of the current attempt; return the next wait or None.
        ``permanent``: this value gets no more rounds (the other values are still tried);
        ``may(delay)``: asked before a round is retried, says why not (see :attr:`refused`)."""
        self.record(exc)
        self.heed(retry_after_of(exc))
        if permanent:
            self.dead.add(self.index)
            if self.values is None:
                return None  # one value, and it will not do: raise now
        if self.values is not None and self._fell_back(exc, on_fallback):
            return 0.0
        return self._next_round(exc, on_retry, may)

    def heed(self, hint: float | None) -> None:
        """A server-directed delay seen in this round (the round's backoff is the longest)."""
        if hint is not None and (self._hint is None or hint > self._hint):
            self._hint = hint

    def _fell_back(self, exc: BaseException, on_fallback: Callable[[Any], object] | None) -> bool:
        """Move to the next fallback value of this round, if one is left (said, and told
        to ``on_fallback``)."""
        values = self.values
        assert values is not None
        self.tried.add(self.index)
        following = self._untried() if self.spread else self._next_alive(self.index + 1)
        if following is None:
            return False
        previous, self.index = self.index, following
        logger.debug("{}: falling back to {}={!r}", self.name, self.param, values[self.index])
        if on_fallback is not None:
            from opero.core.hooks import FallbackDetails, fire

            details = FallbackDetails(
                self.name, self.param or "", values[previous], values[self.index], self.round, exc
            )
            fire(on_fallback, details)
        return True

    def _next_round(
        self,
        exc: BaseException,
        on_retry: Callable[[Any], object] | None,
        may: Callable[[float], str | None] | None,
    ) -> float | None:
        """The round failed: the delay before the next one, or None when none follows."""
        values = self.values
        if self.round > self.schedule.retries:
            return None
        if values is not None and len(self.dead) >= len(values):
            return None  # every value failed for good
        delay = self.schedule.delay(self.round, self._hint)
        if may is not None:
            self.refused = may(delay)
            if self.refused is not None:
                return None
        logger.debug("{}: round {} failed, sleeping {:.3f}s", self.name, self.round, delay)
        if on_retry is not None:
            from opero.core.hooks import RetryDetails, fire

            fire(on_retry, RetryDetails(self.name, self.round, self.rounds, delay, exc))
        self.round += 1
        self.tried.clear()
        self.index = (self._next_alive(0) or 0) if values is not None else 0
        self._hint = None
        return delay

    def record(self, exc: BaseException) -> str:
        """Record ``exc`` as the outcome of the current attempt (noted with its round and
        value when fallback values are in play); return where it happened."""
        values = self.values
        if values is None:
            where = f"attempt {self.round}/{self.rounds}"
        else:
            where = f"round {self.round}/{self.rounds}, {self.param}={values[self.index]!r}"
            add_note_once(exc, where)
        self.errors.append(exc)
        value = values[self.index] if values is not None else None
        self.records.append(Attempt(self.round, value, exc))
        logger.debug("{}: {} failed: {!r}", self.name, where, exc)
        return where

    def move(self, index: int, next_round: bool) -> None:
        """The next attempt uses fallback position ``index`` (in the next round: the rest of
        this one was held back by pauses or cooldowns, a skip rather than a failure)."""
        self.index = index
        if next_round:
            self.round += 1
            self.tried.clear()

    def _next_alive(self, start: int) -> int | None:
        """The first fallback position from ``start`` on that may still be tried (not
        failed for good, nor in this round: a hedge may have tried a later one)."""
        assert self.values is not None
        for n in range(start, len(self.values)):
            if n not in self.dead and n not in self.tried:
                return n
        return None

    def _untried(self) -> int | None:
        """The first fallback position not yet failed in this round, nor for good."""
        assert self.values is not None
        for n in range(len(self.values)):
            if n not in self.dead and n not in self.tried:
                return n
        return None

    def error(self) -> BaseException:
        """The exception to raise once :meth:`failed` returned None."""
        last = self.errors[-1]
        if self.values is None:
            for i, earlier in enumerate(self.errors[:-1], start=1):
                if earlier is not last:
                    add_note_once(last, f"attempt {i}/{self.rounds} failed earlier: {earlier!r}")
            return last
        excs = [e if isinstance(e, Exception) else _wrap(e) for e in self.errors]
        return AllFailedError(
            f"{self.name}: all {len(self.errors)} attempts failed "
            f"({self.round} of {self.rounds} round(s) x {len(self.values)} value(s) "
            f"of {self.param})",
            excs,
            self.records,
        )


def add_note_once(exc: BaseException, note: str) -> None:
    """Add ``note`` unless ``exc`` already carries it (one exception object raised by many
    calls must not see its notes pile up)."""
    notes = getattr(exc, "__notes__", None)
    if notes is None or note not in notes:
        exc.add_note(note)


def _wrap(exc: BaseException) -> Exception:
    # ExceptionGroup holds only Exception; a BaseException put in retry_on is wrapped.
    wrapped = Exception(repr(exc))
    wrapped.__cause__ = exc
    return wrapped
