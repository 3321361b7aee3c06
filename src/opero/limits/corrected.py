"""``Limit(actual=fn)``: what a successful attempt really used corrects the schedule.

After a successful attempt, :meth:`Corrected.heard` asks each limit's ``actual`` what the
attempt used and moves that limit's schedule by the difference from the estimate booked for
it (a refund moves it earlier, never before now; a debit later); with several limits the
units are corrected in the limit's windows too. A failed attempt keeps its estimate. An
``actual`` that raises or answers something other than a finite number >= 0 leaves the
estimate, with one ``RuntimeWarning`` per limiter.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Sequence

from opero.core.clock import CLOCK
from opero.limit_spec import Limit
from opero.limits.gaps import Gap
from opero.limits.windows import Window

__all__ = ["Corrected", "actual_units"]


def actual_units(limit: Limit, result: object) -> float | None:
    """What ``limit.actual`` says a successful attempt used (None: it raised or answered
    something that is not a finite number >= 0)."""
    assert limit.actual is not None
    try:
        used = limit.actual(result)
    except Exception:
        return None
    if isinstance(used, bool) or not isinstance(used, int | float):
        return None
    if not used >= 0 or math.isinf(used):
        return None
    return float(used)


class Corrected:
    """The corrections of a limiter's schedule by what attempts really used (a base of
    :class:`~opero.limits.rate.RateLimiter`, which holds the schedule)."""

    __slots__ = ()

    limits: tuple[Limit, ...]
    intervals: list[float]
    catch_up: bool
    _next: list[float]
    _gaps: list[list[Gap]]
    _windows: list[Window]
    _lock: threading.Lock
    _warned: bool

    def heard(
        self, ok: bool, outcome: object, costs: Sequence[float] | None, sent: float | None = None
    ) -> None:
        """A successful attempt really used what each ``Limit(actual=)`` says: move that
        limit's schedule by the difference from its estimate (``costs``)."""
        if ok:  # a failed attempt keeps its estimate
            self.correct(self.corrections(outcome, costs), CLOCK.monotonic())

    def corrections(
        self, outcome: object, costs: Sequence[float] | None
    ) -> list[tuple[int, float, float]]:
        """Per limit with ``actual``: (its index, the estimate, what the attempt used); an
        ``actual`` that fails leaves its estimate, with one warning per limiter."""
        found = []
        for i, limit in enumerate(self.limits):
            if limit.actual is not None:
                used = actual_units(limit, outcome)
                if used is None:
                    self._warn(limit)
                    continue
                found.append((i, 1.0 if costs is None else float(costs[i]), used))
        return found

    def correct(self, corrections: Sequence[tuple[int, float, float]], now: float) -> None:
        """Apply :meth:`corrections` at ``now``."""
        if corrections:
            with self._lock:
                for i, estimate, used in corrections:
                    self.move(i, (used - estimate) * self.intervals[i], now)
                    if self.catch_up:
                        self._windows[i].correct(estimate, used, now)

    def move(self, i: int, seconds: float, now: float) -> None:
        """Move limit ``i``'s schedule by ``seconds`` (earlier if < 0, never before ``now``);
        the caller holds the lock."""
        end = self._next[i]
        if end == -math.inf or seconds == 0:
            return
        if seconds > 0:
            self._next[i] = end + seconds
            return
        moved = max(end + seconds, min(end, now))
        self._next[i] = moved
        gaps = self._gaps[i]  # given-back stretches lie before the end
        while gaps and gaps[-1][1] > moved:
            start = gaps.pop()[0]
            if start < moved:
                gaps.append((start, moved))
                break

    def _warn(self, limit: Limit) -> None:
        if not self._warned:
            self._warned = True  # type: ignore[misc]  # (a slot of RateLimiter)
            warnings.warn(
                f"the actual= function of {limit!r} raised or did not return a number >= 0; "
                "the estimate stands (this warning is given once)",
                RuntimeWarning,
                stacklevel=3,
            )
