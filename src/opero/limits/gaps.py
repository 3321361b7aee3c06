"""The gaps in one limit's schedule: stretches given back before the schedule's end (their
callers were cancelled while they waited), sorted and disjoint, which later admissions may
take (see :class:`~opero.limits.rate.RateLimiter`)."""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["Gap", "give_back", "room_from", "take_from_gap"]

Gap = tuple[float, float]  #: ``(start, end)``: free time before the schedule's end


def room_from(gaps: list[Gap], end: float, start: float, length: float) -> float:
    """The earliest time >= ``start`` at which a schedule ending at ``end`` with ``gaps``
    has ``length`` free."""
    for gap_start, gap_end in gaps:
        if gap_end <= start:
            continue
        at = gap_start if gap_start > start else start
        if at + length <= gap_end:
            return at
    return end if end > start else start


def take_from_gap(gaps: list[Gap], start: float, end: float) -> None:
    """Take ``[start, end)`` out of the gap where it starts."""
    for k, (gap_start, gap_end) in enumerate(gaps):
        if gap_start <= start < gap_end:
            pieces = []
            if start > gap_start:
                pieces.append((gap_start, start))
            if end < gap_end:
                pieces.append((end, gap_end))
            gaps[k : k + 1] = pieces
            return


def give_back(gaps: list[Gap], schedule_end: float, start: float, end: float) -> float:
    """Give ``[start, end)`` back to a schedule ending at ``schedule_end``; return its new
    end. The last stretch shortens the schedule (taking in a gap just before it); an
    earlier one becomes a gap, joined with its neighbours."""
    if end >= schedule_end:
        while gaps and gaps[-1][1] >= start:
            start = min(start, gaps.pop()[0])
        return start
    k = bisect_left(gaps, (start, end))
    if k > 0 and gaps[k - 1][1] >= start:  # joins the gap before
        k -= 1
        start = gaps[k][0]
        del gaps[k]
    if k < len(gaps) and gaps[k][0] <= end:  # and the gap after
        end = gaps[k][1]
        del gaps[k]
    gaps.insert(k, (start, end))
    return schedule_end
