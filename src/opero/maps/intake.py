"""The items read into one map call: how each starts, and how many are in flight.

Items are read lazily; at most ``bound`` are in flight (started, not finished). With
``ordered=True``, finished results held back for an earlier item still pending count toward
a bound of their own (``held_max``), so one slow item early in the map does not stall the
others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opero.maps.completion import Run

__all__ = ["Feed", "Intake", "Start"]

#: how one item starts: ``start(index, item)``
Start = Callable[[int, object], None]
#: how several items start at once: ``feed(index, room) -> items read``
Feed = Callable[[int, int], int]


class Intake:
    """Reads items as room frees up and starts them."""

    __slots__ = ("bound", "exhausted", "feed", "in_flight", "index", "items", "limit", "start")

    def __init__(
        self,
        items: Iterator[object],
        start: Start,
        feed: Feed | None,
        bound: int,
        held_max: int,
    ) -> None:
        self.items = items
        self.start = start
        self.feed = feed
        self.bound = bound
        #: items read, not handed out: at most ``bound`` unfinished, ``limit`` with the
        #: results held for an earlier item
        self.limit = bound + held_max
        self.index = 0
        self.in_flight = 0
        self.exhausted = False

    @property
    def finished(self) -> bool:
        """Every item was read and handed out."""
        return self.exhausted and self.in_flight == 0

    def top_up(self, held: int) -> None:
        """Start items while there is room (``held``: results held for an earlier item)."""
        room = min(self.bound - self.in_flight + held, self.limit - self.in_flight)
        if self.exhausted or room <= 0:
            return
        if self.feed is not None:
            fed = self.feed(self.index, room)
            self.exhausted = fed < room
            self.in_flight += fed
            self.index += fed
            room -= fed
        if not self.exhausted and room > 0:
            self._one_by_one(room)

    def _one_by_one(self, room: int) -> None:
        items, start, index = self.items, self.start, self.index
        for item in items:
            start(index, item)
            index += 1
            room -= 1
            if room == 0:
                break
        else:
            self.exhausted = True
        self.in_flight += index - self.index
        self.index = index

    def refuse_rest(self, refuse: Start) -> None:
        """The map stopped: every item read from now on is refused, one by one."""
        self.start, self.feed = refuse, None

    def handed_out(self, chunk: list[Run]) -> None:
        self.in_flight -= sum(len(run[1]) for run in chunk)
