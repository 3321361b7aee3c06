"""The admission schedule of an adaptive rate limit: evenly spaced admission times, each
known by a ticket so that a caller waiting for one can ask where it moved."""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right

__all__ = ["Admission", "Schedule"]


class Admission(float):
    """An admission time that knows its booking (``ticket``): the caller waiting for it
    can ask the schedule where it is now (:meth:`Schedule.where`)."""

    __slots__ = ("ticket",)
    ticket: int


def _admission(at: float, ticket: int) -> Admission:
    admission = Admission(at)
    admission.ticket = ticket
    return admission


class Schedule:
    """Admission times, each at least the current spacing from its neighbours.

    It keeps the admissions still ahead (and the last one passed), so that a new one goes
    into the first place, from ``now`` on, that is ``spacing`` away from every booked one:
    after the last, or between two booked when a faster rate left room there (the rate
    rose after they were booked), or where a cancelled wait gave its admission back. When
    the rate falls, the admissions ahead move apart to the new spacing, in their order.
    """

    __slots__ = ("_next", "_now_at", "floor", "tickets", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.tickets: list[int] = []  #: the ticket of each time, in the same order
        self._now_at: dict[int, float] = {}  #: ticket -> its time, for the admissions kept
        self._next = 0
        self.floor = -math.inf  #: no admission before this (rate-limit headers)

    def _forget_passed(self, now: float) -> None:
        """Only the latest passed admission still matters (for the spacing)."""
        passed = bisect_right(self.times, now)
        if passed > 1:
            now_at = self._now_at
            for ticket in self.tickets[: passed - 1]:
                del now_at[ticket]
            del self.times[: passed - 1]
            del self.tickets[: passed - 1]

    def fit(self, now: float, spacing: float) -> float:
        """The earliest time >= ``now`` that is ``spacing`` from every booked admission."""
        self._forget_passed(now)
        at = now if now > self.floor else self.floor
        for booked in self.times:
            if booked + spacing <= at:
                continue
            if at + spacing <= booked:
                break
            at = booked + spacing
        return at

    def book(self, now: float, spacing: float) -> Admission:
        at = self.fit(now, spacing)
        ticket = self._next = self._next + 1
        i = bisect_right(self.times, at)
        self.times.insert(i, at)
        self.tickets.insert(i, ticket)
        self._now_at[ticket] = at
        return _admission(at, ticket)

    def where(self, at: float) -> float:
        """Where the admission booked as ``at`` is now (``at`` itself if it did not move,
        or is passed and forgotten; then it is due)."""
        ticket = getattr(at, "ticket", None)
        if ticket is None:
            return at
        return _admission(self._now_at.get(ticket, at), ticket)

    def release(self, at: float) -> None:
        """A cancelled wait gives the admission booked as ``at`` back (wherever it moved)."""
        ticket = getattr(at, "ticket", None)
        if ticket is not None:
            at = self._now_at.get(ticket, at)
        times = self.times
        i = bisect_left(times, at)
        if i < len(times) and times[i] == at:
            self._now_at.pop(self.tickets[i], None)
            del times[i]
            del self.tickets[i]

    def respace(self, now: float, spacing: float) -> None:
        """The rate changed at ``now``: the admissions ahead keep their order and are
        ``spacing`` apart (and from the latest passed one), none before ``now`` nor the
        floor: later when the rate fell, earlier when it rose."""
        times = self.times
        first = bisect_right(times, now)
        previous = times[first - 1] if first else -math.inf
        start = max(now, self.floor)
        for i in range(first, len(times)):
            previous = self._move(i, max(previous + spacing, start))

    def _move(self, i: int, at: float) -> float:
        """Admission ``i`` is now at ``at`` (its waiter learns it by its ticket)."""
        if at != self.times[i]:
            self.times[i] = at
            self._now_at[self.tickets[i]] = at
        return at

    def ahead(self, now: float) -> int:
        """How many admissions are booked after ``now``."""
        return len(self.times) - bisect_right(self.times, now)

    def paced(self, now: float, spacing: float, left: int, reset: float, after: float) -> None:
        """Headers read at ``now``: ``left`` requests until ``reset``. The first ``left``
        admissions ahead are ``spacing`` apart in their order, the first ``spacing`` after
        ``now`` (later or earlier than booked); the others wait for the reset, ``after``
        apart. The next admission booked waits ``spacing``, or for the reset when nothing is
        left."""
        times = self.times
        first = bisect_right(times, now)
        previous = now
        for i in range(first, len(times)):
            kept = i - first < left  # one of the requests left, or it waits for the reset
            at = previous + spacing if kept else max(times[i], previous + after, reset)
            previous = self._move(i, at)
        wait = reset if len(times) - first >= left else now + spacing
        self.floor = max(self.floor, wait)
