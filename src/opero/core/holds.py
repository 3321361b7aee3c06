"""Which fallback value the next attempt uses, given shared pauses and cooldowns .

Both drivers ask :meth:`Holds.choose` before an attempt when something may hold a value
back (a pause runs, or ``cooldown`` is on): paused or open values are skipped within a
round while another value can start now; a call whose remaining values are all paused
waits for the earliest; a call left with no value to try ends (the error of its attempts,
or :class:`~opero.errors.CircuitOpenError` when it made none). Failures and successes are
reported back, so pauses and breakers learn from every caller.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Protocol

from opero.core.pauses import Pauses, SharedPauses
from opero.core.retry import Attempts
from opero.core.stats import Counters, success_key
from opero.errors import CircuitOpenError

if TYPE_CHECKING:
    from opero.core.breaker import Ticket

__all__ = ["BreakerSet", "Choice", "Holds"]


class BreakerSet(Protocol):
    """The cooldown breakers of one function, by value key (in memory or in Redis)."""

    def admit(self, key: Hashable) -> Ticket | None: ...
    def back_in(self, key: Hashable) -> float: ...
    def failed(self, key: Hashable, ticket: Ticket | None = None) -> None: ...
    def succeeded(self, key: Hashable, ticket: Ticket | None = None) -> None: ...
    def release(self, key: Hashable, ticket: Ticket | None = None) -> None: ...


#: where the next attempt goes: its fallback position, whether it opens the next round (the
#: rest of this one is held back), the seconds to wait before it, and the breaker ticket it
#: starts under (None without cooldowns, or while it must still wait)
Choice = tuple[int, bool, float, "Ticket | None"]


class Holds:
    """The pauses and breakers of one decorated function."""

    __slots__ = ("breakers", "counters", "max_delay", "name", "pauses")

    def __init__(
        self,
        name: str,
        counters: Counters,
        max_delay: float,
        breakers: BreakerSet | None = None,
        shared: SharedPauses | None = None,
        pauses: Pauses | None = None,
    ) -> None:
        self.name = name
        self.max_delay = max_delay
        self.counters = counters
        #: the function's own pauses, a service's, or both by value (``RoutedPauses``)
        self.pauses = pauses if pauses is not None else Pauses(counters, max_delay, shared)
        #: the local :class:`~opero.core.breaker.Breakers`, or their Redis twin
        self.breakers = breakers

    @property
    def active(self) -> bool:
        """Whether the next attempt must ask :meth:`choose`."""
        return self.breakers is not None or self.pauses.active

    @staticmethod
    def key(values: Sequence[object] | None, index: int) -> str | None:
        """The pause/breaker key of fallback position ``index`` (None without fallback)."""
        if values is None:
            return None
        return success_key(values[index], True)

    def choose(
        self,
        attempts: Attempts,
        soonest: Callable[[int], float] | None = None,
        single: str | None = None,
    ) -> Choice:
        """The fallback position the next attempt uses, whether it opens the next round,
        and how long to wait first; raise when no value is left to try. ``soonest(n)``
        (the spread strategy): seconds until position ``n`` would be admitted; among the
        values not yet failed in this round, the one that can start soonest is chosen.
        ``single``: the key of the one value of a call that gives no list of them, when
        values have budgets of their own."""
        breakers = self.breakers
        keys = _keys(attempts.values, single)
        probing: set[int] = set()  # half-open values whose one probe another caller holds
        while True:
            index, wait = self._best(attempts, keys, probing, soonest, fresh=False)
            next_round = False
            if index is None and attempts.values is not None and attempts.round < attempts.rounds:
                # nothing left in this round: the next round (a skip, not a failure)
                index, wait = self._best(attempts, keys, probing, soonest, fresh=True)
                next_round = index is not None
            if index is None:
                raise self._nothing_left(attempts, keys)
            if wait > 0 or breakers is None:  # (a probe is taken once the wait is over)
                return index, next_round, wait, None
            ticket = breakers.admit(keys[index])
            if ticket is not None:
                return index, next_round, wait, ticket
            probing.add(index)  # another caller holds its half-open probe: choose again

    def _best(
        self,
        attempts: Attempts,
        keys: list[Hashable],
        probing: set[int],
        soonest: Callable[[int], float] | None,
        fresh: bool,
    ) -> tuple[int | None, float]:
        """The value the next attempt may use and the wait before it (``fresh``: as in a
        round of its own): in order from the current position, or (the spread strategy)
        the one that can start soonest."""
        if soonest is None:
            return self._pick(attempts, keys, 0 if fresh else attempts.index, probing)
        return self._spread(attempts, keys, set() if fresh else attempts.tried, probing, soonest)

    def _pick(
        self, attempts: Attempts, keys: list[Hashable], start: int, probing: set[int]
    ) -> tuple[int | None, float]:
        breakers = self.breakers
        best: int | None = None
        best_wait = math.inf
        for n in range(start, len(keys)):
            if n in attempts.dead or n in probing:
                continue
            if breakers is not None and breakers.back_in(keys[n]) > 0:
                continue
            wait = self.pauses.remaining(keys[n])
            if wait <= 0:
                return n, 0.0
            if wait < best_wait:
                best, best_wait = n, wait
        return best, (0.0 if best is None else best_wait)

    def _spread(
        self,
        attempts: Attempts,
        keys: list[Hashable],
        tried: set[int],
        probing: set[int],
        soonest: Callable[[int], float],
    ) -> tuple[int | None, float]:
        """The live value that can start soonest (its pause and its rate limit alike; ties:
        the given order), and its pause."""
        breakers = self.breakers
        best: int | None = None
        best_start = best_pause = math.inf
        for n in range(len(keys)):
            if n in attempts.dead or n in tried or n in probing:
                continue
            if breakers is not None and breakers.back_in(keys[n]) > 0:
                continue
            pause = max(self.pauses.remaining(keys[n]), 0.0)
            start = max(pause, soonest(n))
            if start < best_start - 1e-9:
                best, best_start, best_pause = n, start, pause
        return best, (0.0 if best is None else best_pause)

    def _nothing_left(self, attempts: Attempts, keys: list[Hashable]) -> BaseException:
        if attempts.errors:
            return attempts.error()
        assert self.breakers is not None
        back = {k if k is None else str(k): self.breakers.back_in(k) for k in keys}
        if attempts.values is None:
            detail = f"back in {back[None]:.1f}s"
        else:
            detail = ", ".join(f"{k} back in {s:.1f}s" for k, s in back.items())
        return CircuitOpenError(
            f"{self.name}: cooling down after repeated failures, not called ({detail})",
            back,
        )

    def failed(self, key: str | None, hint: float | None, ticket: Ticket | None = None) -> None:
        """A failed attempt of value ``key``: pause it (server delay) and count it."""
        if hint is not None:
            pauses = self.pauses
            fresh = pauses.pause(key, min(hint, self.max_delay))
            if fresh and pauses.counters is not self.counters:
                self.counters.pauses += 1  # a service's pause, counted by the function too
        if self.breakers is not None:
            self.breakers.failed(key, ticket)

    def succeeded(self, key: str | None, ticket: Ticket | None = None) -> None:
        """Only the half-open probe's success closes an open breaker (``ticket`` tells)."""
        if self.breakers is not None:
            self.breakers.succeeded(key, ticket)

    def abandoned(self, key: str | None, ticket: Ticket | None = None) -> None:
        """An attempt ended without an outcome (cancelled): free a half-open probe."""
        if self.breakers is not None:
            self.breakers.release(key, ticket)


def _keys(values: Sequence[object] | None, single: str | None) -> list[Hashable]:
    """The pause/breaker key of each fallback position (``single``: the one value's)."""
    return [single] if values is None else [success_key(v, True) for v in values]
