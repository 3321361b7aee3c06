"""A global rate limit: admissions spaced so that no window holds more than the limit allows.

The limiter decides and never waits: :meth:`RateLimiter.reserve` books the next free
admission time under a lock and returns it; the caller sleeps until then (``time.sleep``
or ``asyncio.sleep``). One limiter serves every thread and every event loop that calls
the decorated function, so the limit is per function, not per caller. No bursts: admissions
are evenly spaced, so no window of length ``w`` holds more than ``ceil(rate*w)+1``.

Several limits (``rate_limit=["500/minute", Limit("30000/minute", cost=tokens)]``) are
booked together: an attempt is admitted at the first time every limit allows, and each
limit's schedule moves on from that time by ``cost / rate`` (a GCRA per limit, weighted,
with no burst allowance). An attempt whose cost exceeds a whole period's budget is
admitted alone and moves its schedule by as much.

Each admission holds a stretch ``[at, at + cost / rate)`` of every limit's schedule, and
no two stretches of one limit overlap: that is the whole spacing rule. A caller cancelled
while it waits gives its stretches back (:meth:`RateLimiter.release`), wherever they lie:
the last one shortens the schedule, an earlier one leaves a gap, and the next reservation
takes the earliest time, not in the past, at which every limit has room (a gap or the end
of its schedule). So cancelled waits leave no debt, and the spacing is never broken.
"""

from __future__ import annotations

import heapq
import math
import threading
from bisect import bisect_left
from collections.abc import Sequence

from opero.rates import Limit

__all__ = ["RateLimiter"]

_Gap = tuple[float, float]


class RateLimiter:
    """Evenly spaced admissions under one or more (weighted) limits."""

    __slots__ = (
        "_booked",
        "_due",
        "_gaps",
        "_lock",
        "_next",
        "intervals",
        "limits",
        "listens",
        "rate",
    )

    def __init__(self, limits: float | Sequence[Limit]) -> None:
        if isinstance(limits, int | float):
            limits = (Limit(limits),)
        self.limits = tuple(limits)
        self.rate = self.limits[0].rate
        self.intervals = [1.0 / limit.rate for limit in self.limits]  # seconds per unit
        #: per limit: the end of its schedule (the time after its last booked stretch)
        self._next = [-math.inf] * len(self.limits)
        #: per limit: stretches given back before the end of its schedule, sorted, disjoint
        self._gaps: list[list[_Gap]] = [[] for _ in self.limits]
        #: admissions still ahead that may be given back: time -> what each limit gives back
        self._booked: dict[float, tuple[_Gap, ...]] = {}
        self._due: list[float] = []  # heap of those times, to forget the passed ones
        self._lock = threading.Lock()
        #: told of outcomes: a limit corrects its costs by what attempts really used
        self.listens = any(limit.actual is not None for limit in self.limits)

    @property
    def schedule_end(self) -> list[float]:
        """Per limit, the time after its last booked stretch (-inf: nothing booked)."""
        with self._lock:
            return list(self._next)

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float:
        """Book the next admission at or after ``now`` (``costs``: units per limit, 1 each
        without); return its time."""
        with self._lock:
            if self._due and self._due[0] <= now:
                self._forget(now)
            if len(self.intervals) == 1 and not self._gaps[0]:  # the common case, quickly
                length = self.intervals[0] if costs is None else costs[0] * self.intervals[0]
                end = self._next[0]
                at = now if now > end else end
                self._next[0] = at + length
                if at > now:
                    self._remember(at, ((at if end == -math.inf else end, at + length),))
                return at
            if costs is None:
                lengths: Sequence[float] = self.intervals
            else:
                lengths = [c * step for c, step in zip(costs, self.intervals, strict=True)]
            at = self._fit(now, lengths) if any(self._gaps) else max(now, *self._next)
            spans = self._book(at, lengths)
            if at > now:
                self._remember(at, spans)
            return at

    def peek(self, now: float, costs: Sequence[float] | None = None) -> float:
        """When an admission booked at ``now`` would be, without booking it."""
        with self._lock:
            if costs is None:
                lengths: Sequence[float] = self.intervals
            else:
                lengths = [c * step for c, step in zip(costs, self.intervals, strict=True)]
            return self._fit(now, lengths) if any(self._gaps) else max(now, *self._next)

    def hold(self, until: Sequence[float]) -> None:
        """Let no limit's schedule end before ``until`` (per limit): time booked elsewhere
        (the shared schedule of a Redis limiter) that this one must not hand out again."""
        with self._lock:
            self._next = [max(a, b) for a, b in zip(self._next, until, strict=True)]

    def release(self, at: float) -> None:
        """Give back the admission booked at ``at`` (its caller was cancelled while it
        waited), so a cancelled wait does not slow down the callers that come after it."""
        with self._lock:
            spans = self._booked.pop(at, None)
            if spans is None:
                return
            for i, (start, end) in enumerate(spans):
                if end > start:
                    self._give_back(i, start, end)

    # ----- the schedule -----------------------------------------------------------------
    def _forget(self, now: float) -> None:
        due = self._due
        while due and due[0] <= now:  # admitted by now: no longer given back
            self._booked.pop(heapq.heappop(due), None)

    def _remember(self, at: float, spans: tuple[_Gap, ...]) -> None:
        if at in self._booked:  # two admissions at one instant (tiny costs): keep neither
            self._booked.pop(at)
            return
        self._booked[at] = spans
        heapq.heappush(self._due, at)

    def _fit(self, now: float, lengths: Sequence[float]) -> float:
        """The earliest time >= ``now`` at which every limit has room for its stretch."""
        for gaps in self._gaps:  # forget gaps wholly in the past
            while gaps and gaps[0][1] <= now:
                del gaps[0]
        at = now
        moved = True
        while moved:
            moved = False
            for i, length in enumerate(lengths):
                room = self._room(i, at, length)
                if room > at:
                    at, moved = room, True
        return at

    def _room(self, i: int, start: float, length: float) -> float:
        """The earliest time >= ``start`` at which limit ``i`` has ``length`` free."""
        for gap_start, gap_end in self._gaps[i]:
            if gap_end <= start:
                continue
            at = gap_start if gap_start > start else start
            if at + length <= gap_end:
                return at
        end = self._next[i]
        return end if end > start else start

    def _book(self, at: float, lengths: Sequence[float]) -> tuple[_Gap, ...]:
        """Take each limit's stretch at ``at``; return what each would give back: its
        stretch, and the unused time before it when another limit made it wait (that time
        went to no one else, so a cancelled wait gives it back too)."""
        spans = []
        for i, length in enumerate(lengths):
            end = self._next[i]
            if at >= end:
                self._next[i] = at + length
                spans.append((end if end > -math.inf else at, at + length))
                continue
            spans.append((at, at + length))
            gaps = self._gaps[i]  # ``at`` lies in a gap of this limit (see _fit)
            for k, (gap_start, gap_end) in enumerate(gaps):
                if gap_start <= at < gap_end:
                    pieces = []
                    if at > gap_start:
                        pieces.append((gap_start, at))
                    if at + length < gap_end:
                        pieces.append((at + length, gap_end))
                    gaps[k : k + 1] = pieces
                    break
        return tuple(spans)

    def _give_back(self, i: int, start: float, end: float) -> None:
        gaps = self._gaps[i]
        if end >= self._next[i]:  # the last stretch: the schedule ends earlier
            while gaps and gaps[-1][1] >= start:  # and takes in a gap just before it
                start = min(start, gaps.pop()[0])
            self._next[i] = start
            return
        k = bisect_left(gaps, (start, end))
        if k > 0 and gaps[k - 1][1] >= start:  # joins the gap before
            k -= 1
            start = gaps[k][0]
            del gaps[k]
        if k < len(gaps) and gaps[k][0] <= end:  # and the gap after
            end = gaps[k][1]
            del gaps[k]
        gaps.insert(k, (start, end))
