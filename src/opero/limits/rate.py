"""A global rate limit: admissions spaced so that no window holds more than the limit allows.

The limiter decides and never waits: :meth:`RateLimiter.reserve` books the next free
admission time under a lock and returns it; the caller sleeps until then (``time.sleep``
or ``asyncio.sleep``). One limiter serves every thread and every event loop that calls
the decorated function, so the limit is per function, not per caller.

One limit: admissions are evenly spaced, with no burst. Each admission holds a stretch
``[at, at + cost / rate)`` of the limit's schedule (a GCRA with no burst allowance,
weighted), and no two stretches overlap, so no window of length ``w`` holds more than
``ceil(rate * w) + 1`` admissions. An attempt whose cost exceeds a whole period's budget is
admitted alone and moves the schedule by as much.

Several limits (``rate_limit=["300/6s", Limit("60000/6s", cost=tokens)]``): each limit is
its own schedule of stretches, and an attempt is admitted at the first time every limit
allows. A limit that had room earlier than that lost the time in between to another limit;
its stretch is then placed where it had room, behind the admission (a period behind at
most), so its schedule runs behind real time and later admissions may come faster than its
rate until it has caught up. What bounds the catching up is its window (:mod:`.windows`):
each limit remembers the units it admitted over the last period, and an attempt is admitted
only at a time where every window ``[s, s + period)`` of that limit that holds it has room
for its units (one of more than a budget is admitted alone in its windows). Why this holds:
each admission is checked against every window that holds it and everything booked before
it, and every later admission against it in turn; giving back and refunds only take units
away; so no window of a limit's period ever holds more than its budget (in booked units),
while over a long run each limit reaches its own rate whichever limit binds at each moment:
requests and tokens together reach what an API accepts, not the sum of per-attempt maxima.
Time a limit waits for its own window is its own (its stretch starts at the admission: it
is back to even spacing), and time no caller was waiting is not lost to another limit: the
lag is carried only while the limit's latest admission lies within a period
(:meth:`RateLimiter._floor`). With one limit the lag is zero and there is no window: the
strict spacing above, unchanged. The search for the admission time only moves forward,
to a gap, a schedule's end or the time an admission leaves a window, so it ends.

A caller cancelled while it waits gives its admission back (:meth:`RateLimiter.release`):
its stretches, wherever they lie (the last one shortens the schedule, an earlier one
leaves a gap that the next reservation may take), and its units in each window.

``Limit(actual=fn)``: after a successful attempt :meth:`RateLimiter.heard` asks ``fn`` what
the attempt really used and moves that limit's schedule by the difference from the
estimate (a refund moves it earlier, never before now; a debit later), and puts what it
used in the limit's windows in place of the estimate.
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Sequence

from opero.limit_spec import Limit
from opero.limits.corrected import Corrected
from opero.limits.gaps import Gap, give_back, room_from, take_from_gap
from opero.limits.windows import Window

__all__ = ["RateLimiter"]

#: what a booked admission gives back: per limit its stretch, and its units
_Held = tuple[tuple[Gap, ...], tuple[float, ...]]


class RateLimiter(Corrected):
    """Evenly spaced admissions under one or more (weighted) limits."""

    __slots__ = (
        "_booked",
        "_due",
        "_gaps",
        "_latest",
        "_lock",
        "_next",
        "_warned",
        "_windows",
        "catch_up",
        "intervals",
        "limits",
        "listens",
        "periods",
        "rate",
    )

    def __init__(self, limits: float | Sequence[Limit]) -> None:
        if isinstance(limits, int | float):
            limits = (Limit(limits),)
        self.limits = tuple(limits)
        self.rate = self.limits[0].rate
        self.intervals = [1.0 / limit.rate for limit in self.limits]  # seconds per unit
        self.periods = [limit.period for limit in self.limits]
        #: several limits: each catches up time lost to the others, within its windows
        self.catch_up = len(self.limits) > 1
        #: per limit: the end of its schedule (the time after its last booked stretch)
        self._next = [-math.inf] * len(self.limits)
        #: per limit: stretches given back before the end of its schedule, sorted, disjoint
        self._gaps: list[list[Gap]] = [[] for _ in self.limits]
        #: per limit (several limits only): its admissions over the last period
        self._windows = [Window(limit.rate, limit.period) for limit in self.limits]
        self._latest = -math.inf  # several limits: the latest ``now`` seen
        #: admissions still ahead that may be given back: time -> what each limit gives back
        self._booked: dict[float, _Held] = {}
        self._due: list[float] = []  # heap of those times, to forget the passed ones
        self._lock = threading.Lock()
        #: told of outcomes: a limit corrects its costs by what attempts really used
        self.listens = any(limit.actual is not None for limit in self.limits)
        self._warned = False

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
            if not self.catch_up and not self._gaps[0]:  # one limit, the common case, quickly
                length = self.intervals[0] if costs is None else costs[0] * self.intervals[0]
                end = self._next[0]
                at = now if now > end else end
                self._next[0] = at + length
                if at > now:
                    self._remember(at, (((at if end == -math.inf else end, at + length),), ()))
                return at
            return self._reserve_fitted(now, costs)

    def _reserve_fitted(self, now: float, costs: Sequence[float] | None) -> float:
        """:meth:`reserve` when there are several limits or gaps to fit in (under the lock)."""
        now, units, lengths = self._start(now, costs)
        at, starts = self._fit(now, units, lengths)
        while self.catch_up and at in self._booked:  # each admission its own instant,
            at = math.nextafter(at, math.inf)  # so that it can be given back
        held = self._book(at, starts, units, lengths)
        if at > now:
            self._remember(at, held)
        return at

    def peek(self, now: float, costs: Sequence[float] | None = None) -> float:
        """When an admission booked at ``now`` would be, without booking it."""
        with self._lock:
            if not self.catch_up and not self._gaps[0]:
                return max(now, self._next[0])
            now, units, lengths = self._start(now, costs)
            at = self._fit(now, units, lengths)[0]
            while self.catch_up and at in self._booked:
                at = math.nextafter(at, math.inf)
            return at

    def hold(self, until: Sequence[float]) -> None:
        """Let no limit's schedule end before ``until`` (per limit): time booked elsewhere
        (the shared schedule of a Redis limiter) that this one must not hand out again."""
        with self._lock:
            self._next = [max(a, b) for a, b in zip(self._next, until, strict=True)]

    def release(self, at: float) -> None:
        """Give back the admission booked at ``at`` (its caller was cancelled while it
        waited), so a cancelled wait does not slow down the callers that come after it."""
        with self._lock:
            held = self._booked.pop(at, None)
            if held is None:
                return
            spans, units = held
            for i, (start, end) in enumerate(spans):
                if end > start:
                    self._give_back(i, start, end)
            for window, amount in zip(self._windows, units, strict=False):
                window.remove(at, amount)

    # ----- the schedule -----------------------------------------------------------------
    def _start(
        self, now: float, costs: Sequence[float] | None
    ) -> tuple[float, Sequence[float], Sequence[float]]:
        """``now`` never before one seen (several limits: the windows behind it are
        forgotten), each limit's units and the length of its stretch."""
        if self.catch_up:
            now = self._latest = max(now, self._latest)
            self._prune(now)
        if costs is None:
            return now, [1.0] * len(self.limits), self.intervals
        return now, costs, [c * step for c, step in zip(costs, self.intervals, strict=True)]

    def _forget(self, now: float) -> None:
        due = self._due
        while due and due[0] <= now:  # admitted by now: no longer given back
            self._booked.pop(heapq.heappop(due), None)

    def _prune(self, now: float) -> None:
        self._drop_past_gaps(now)
        for window in self._windows:
            window.prune(now)

    def _remember(self, at: float, held: _Held) -> None:
        if at in self._booked:  # two admissions at one instant: keep neither
            self._booked.pop(at)
            return
        self._booked[at] = held
        heapq.heappush(self._due, at)

    def _floor(self, i: int, now: float) -> float:
        """How far back limit ``i``'s next stretch may lie: by as much as its schedule
        ended behind its latest admission (the time it lost to other limits; carried while
        admissions come within a period, never more than a period), else ``now``."""
        latest = self._windows[i].latest()
        if not self.catch_up or latest is None:
            return now
        behind = latest - self._next[i]
        return now - min(behind, self.periods[i]) if behind > 0 else now

    def _fit(
        self, now: float, units: Sequence[float], lengths: Sequence[float]
    ) -> tuple[float, list[float]]:
        """The earliest time >= ``now`` at which every limit admits the attempt, and where
        each limit's stretch lies (at or before that time)."""
        if not self.catch_up:
            self._drop_past_gaps(now)
        n = len(lengths)
        lags = self.periods if self.catch_up else [0.0] * n
        own = [self._floor(i, now) for i in range(n)]  # not before: each limit's own rules
        at = now
        while True:  # until a pass over the limits moves no further
            later = self._pass(at, own, lags, units, lengths)
            if later <= at:
                break
            at = later
        return at, [self._room(i, max(own[i], at - lags[i]), lengths[i]) for i in range(n)]

    def _pass(
        self,
        at: float,
        own: list[float],
        lags: Sequence[float],
        units: Sequence[float],
        lengths: Sequence[float],
    ) -> float:
        """``at``, moved on by each limit in turn to where it has room (and, several limits,
        to where its window has room for the units: that limit's own time, into ``own``)."""
        for i, length in enumerate(lengths):
            at = max(at, self._room(i, max(own[i], at - lags[i]), length))
            if self.catch_up:
                clear = self._windows[i].earliest(at, units[i])
                if clear > at:  # waiting for its own window: its own time
                    at = own[i] = clear
        return at

    def _drop_past_gaps(self, now: float) -> None:
        for gaps in self._gaps:  # forget gaps wholly in the past
            while gaps and gaps[0][1] <= now:
                del gaps[0]

    def _room(self, i: int, start: float, length: float) -> float:
        """The earliest time >= ``start`` at which limit ``i`` has ``length`` free."""
        return room_from(self._gaps[i], self._next[i], start, length)

    def _book(
        self, at: float, starts: Sequence[float], units: Sequence[float], lengths: Sequence[float]
    ) -> _Held:
        """Take each limit's stretch (at ``starts``); return what each would give back: its
        stretch, and the unused time before it (that time went to no one else, so a
        cancelled wait gives it back too), and its units in each window."""
        spans = []
        for i, (start, length) in enumerate(zip(starts, lengths, strict=True)):
            end = self._next[i]
            if start >= end:
                self._next[i] = start + length
                spans.append((end if end > -math.inf else start, start + length))
                continue
            spans.append((start, start + length))
            take_from_gap(self._gaps[i], start, start + length)  # it lies in a gap (_fit)
        if not self.catch_up:
            return tuple(spans), ()
        for window, amount in zip(self._windows, units, strict=True):
            window.add(at, float(amount))
        return tuple(spans), tuple(float(u) for u in units)

    def _give_back(self, i: int, start: float, end: float) -> None:
        self._next[i] = give_back(self._gaps[i], self._next[i], start, end)
