"""When a map stops starting items: after ``fail_fast`` items in a row failed (in completion
order; a success resets the run), or once the deadline enclosing the map call has passed.

An item *starts* when its first attempt is given a worker (:class:`WorkerGate`, where items
already started go first, so new items start only when no started item is waiting for a
worker); in process and executor maps fed in bulk, when the job holding its first attempt is
handed to a worker. An item not started by then is refused: it fails with
:class:`~opero.MapStoppedError` (its cause the last failed item's error), or with
:class:`~opero.DeadlineExceededError` once the map's deadline has passed, without any attempt.
"""

from __future__ import annotations

import asyncio
from collections import deque

from opero.core.clock import CLOCK
from opero.errors import DeadlineExceededError, MapStoppedError

__all__ = ["ItemGate", "MapStop", "Stopped", "WorkerGate"]


class Stopped(BaseException):
    """An item refused by a stopped map, raised inside its call where the call would
    have started (a ``BaseException``: a cache flight it leads is abandoned to a waiter,
    never failed with this map's refusal). It never leaves the map."""


class MapStop:
    """The stop rule of one map call."""

    __slots__ = ("at", "cause", "limit", "name", "run", "tripped")

    def __init__(self, name: str, fail_fast: int | None, at: float | None) -> None:
        self.name = name
        self.limit = fail_fast
        #: the deadline enclosing the map call (``CLOCK.monotonic()`` time), or None
        self.at = at
        self.run = 0  # items failed in a row
        self.cause: BaseException | None = None
        self.tripped = False

    def ended(self, ok: bool, value: object) -> None:
        """An item ended (in completion order): a success resets the run of failures."""
        if ok:
            self.run = 0
            return
        if self.limit is None or self.tripped:
            return
        self.run += 1
        if isinstance(value, BaseException):
            self.cause = value
        if self.run >= self.limit:
            self.tripped = True

    def stopped(self) -> bool:
        """Whether an item not yet started must be refused."""
        return self.tripped or (self.at is not None and CLOCK.monotonic() >= self.at)

    def error(self) -> Exception:
        """The failure of a refused item (a new exception for each item)."""
        if self.at is not None and CLOCK.monotonic() >= self.at:
            return DeadlineExceededError(
                f"{self.name}: item not started: the deadline of the map call had passed"
            )
        error = MapStoppedError(
            f"{self.name}: item not started: {self.limit} items in a row failed "
            f"(fail_fast={self.limit})"
        )
        error.__cause__ = self.cause
        return error


class WorkerGate:
    """A map's free workers, taken by each attempt; items already started go before items
    waiting for their first attempt. A freed worker is offered to a new item only after the
    task that freed it has run on (its item's next attempt takes it back at once)."""

    __slots__ = ("free", "fresh", "later", "offering")

    def __init__(self, workers: int) -> None:
        self.free = workers
        self.later: deque[asyncio.Future[None]] = deque()  # items already started
        self.fresh: deque[asyncio.Future[None]] = deque()  # first attempts
        self.offering = False

    async def acquire(self, first: bool = False) -> None:
        if self.free > 0 and not self.later and not (first and self.fresh):
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line = self.fresh if first else self.later
        line.append(waiter)
        try:
            await waiter
        except BaseException:
            self._gave_up(waiter, line)
            raise

    def _gave_up(self, waiter: asyncio.Future[None], line: deque[asyncio.Future[None]]) -> None:
        """A waiter was cancelled: a worker it was handed meanwhile is passed on."""
        if waiter.done() and not waiter.cancelled():
            self.release()  # handed a worker just as it was cancelled: pass it on
            return
        try:
            line.remove(waiter)
        except ValueError:  # already passed over
            pass

    def release(self) -> None:
        while self.later:
            waiter = self.later.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1
        if self.fresh and not self.offering:
            self.offering = True
            asyncio.get_running_loop().call_soon(self._offer)

    def _offer(self) -> None:
        self.offering = False
        while self.free > 0 and self.fresh:
            waiter = self.fresh.popleft()
            if not waiter.done():
                self.free -= 1
                waiter.set_result(None)


class ItemGate:
    """One item's way to a worker (what the driver takes before each attempt): its first
    attempt is refused with :class:`Stopped` once the map has stopped."""

    __slots__ = ("gate", "started", "stop")

    def __init__(self, gate: WorkerGate | None, stop: MapStop, started: bool) -> None:
        self.gate = gate
        self.stop = stop
        self.started = started

    async def acquire(self) -> None:
        gate = self.gate
        if gate is not None:
            await gate.acquire(not self.started)
        if not self.started:
            if self.stop.stopped():
                if gate is not None:
                    gate.release()
                raise Stopped
            self.started = True

    def release(self) -> None:
        if self.gate is not None:
            self.gate.release()
