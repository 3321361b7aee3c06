"""The window of one limit among several: the admissions of its last period, and the earliest
time at which every window of its period around an admission has room for its units.

A window is ``[s, s + period)``; a limit's budget is ``rate * period`` units; an admission of
more than a budget is admitted alone in its windows. Used by
:class:`~opero.limits.rate.RateLimiter` to bound how fast a limit catches up time it lost to
the others (the Redis script does the same on the server).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from itertools import accumulate

__all__ = ["Window"]

_EPS = 1e-9  #: units: sums of float costs compared with a budget


class Window:
    """The admissions ``(time, units)`` of one limit over its last period, sorted."""

    __slots__ = ("budget", "log", "period")

    def __init__(self, rate: float, period: float) -> None:
        self.period = period
        self.budget = rate * period
        self.log: list[tuple[float, float]] = []

    def latest(self) -> float | None:
        """The time of the latest admission remembered (None: none within a period)."""
        return self.log[-1][0] if self.log else None

    def prune(self, now: float) -> None:
        """Forget the admissions that no window holding ``now`` or later holds."""
        log = self.log
        if log and log[0][0] + self.period <= now:
            del log[: bisect_left(log, (now - self.period, math.inf))]

    def add(self, at: float, units: float) -> None:
        insort(self.log, (at, units))

    def remove(self, at: float, units: float) -> None:
        log = self.log
        k = bisect_left(log, (at, units))
        if k < len(log) and log[k] == (at, units):
            del log[k]

    def correct(self, estimate: float, used: float, now: float) -> None:
        """Put what an attempt used in place of its estimate. Which of the admissions by
        ``now`` booked with that estimate it was is not known: a refund goes to the earliest,
        a debit to the latest, so that every window that holds a time to come and the
        attempt's own admission counts at least what it really holds."""
        log = self.log
        found = [k for k, (a, u) in enumerate(log) if a <= now and u == estimate]
        if found:
            k = found[0] if used < estimate else found[-1]
            log[k] = (log[k][0], used)
            log.sort()

    def earliest(self, start: float, units: float) -> float:
        """The earliest time >= ``start`` at which every window around it has room for
        ``units``."""
        log = self.log
        free = self.budget - min(units, self.budget) + _EPS
        if units == 0 or not log:
            return start
        times = [a for a, _ in log]
        if times[-1] <= start:  # nothing booked after: only the window ending at ``start``
            return self._after_log(times, start, free)
        return self._among_log(times, start, free)

    def _among_log(self, times: list[float], start: float, free: float) -> float:
        """:meth:`earliest` when admissions lie after ``start``: the first of ``start`` and
        the times an admission leaves the windows where every window has room."""
        period = self.period
        sums = [0.0, *accumulate(u for _, u in self.log)]
        for t in [start, *(a + period for a in times if a + period > start)]:
            if _load(times, sums, t, period) <= free:  # else wait for the next admission
                return t  # to leave the windows
        t = times[-1] + period
        while _load(times, sums, t, period) > free:  # past all of them: rounding only
            t = math.nextafter(t, math.inf)
        return t

    def _after_log(self, times: list[float], start: float, free: float) -> float:
        """:meth:`earliest` when every admission lies at or before ``start``: wait until
        the oldest admissions of the window ending at ``start`` leave it."""
        log, period = self.log, self.period
        k = bisect_right(times, start - period)
        load = sum(u for _, u in log[k:])
        for when, amount in log[k:]:
            if load <= free:
                break
            load -= amount
            start = when + period
        return start


def _load(times: list[float], sums: list[float], t: float, period: float) -> float:
    """The most units a window ``[s, s + period)`` holding ``t`` holds (``sums``: running
    totals of the units at ``times``). Such a window holds most just after its start passes
    ``t - period`` or the time ``e - period`` of an admission ``e`` ahead of ``t``: it then
    holds what lies in ``(b, b + period]``."""
    ahead = times[bisect_right(times, t) : bisect_left(times, t + period)]
    return max(
        sums[bisect_right(times, b + period)] - sums[bisect_right(times, b)]
        for b in [t - period, *(e - period for e in ahead)]
    )
