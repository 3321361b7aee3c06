"""Single-flight: concurrent misses on one cache key run the function once.

The first caller to miss a key becomes the leader and computes; callers that miss the
same key meanwhile wait for the leader's outcome, from any thread or any event loop (a
thread waits on a ``threading.Event``; a task awaits a future of its own loop, woken with
``call_soon_threadsafe``, so no asyncio object is shared between loops). If the leader
ends in an error, its waiters receive that error; if it is cancelled or interrupted
(a ``BaseException`` that is not an ``Exception``), the flight is abandoned and one waiter
takes over, so no waiter ever receives another task's ``CancelledError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Hashable
from typing import Any

__all__ = ["Flight", "SingleFlight"]


class Flight:
    """One in-progress computation of a key."""

    __slots__ = ("abandoned", "error", "event", "loops", "value", "waiting")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.waiting = 0  #: callers waiting on this flight (observability and tests)

    def outcome(self) -> Any:
        """The leader's value, or raise the leader's error."""
        if self.error is not None:
            raise self.error
        return self.value

    def wait(self) -> None:
        """Block the calling thread until the leader is done."""
        self.waiting += 1
        try:
            self.event.wait()
        finally:
            self.waiting -= 1


class SingleFlight:
    """The flights of one decorated function, keyed by cache key."""

    __slots__ = ("_flights", "_lock")

    def __init__(self) -> None:
        self._flights: dict[Hashable, Flight] = {}
        self._lock = threading.Lock()

    def join(self, key: Hashable) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether the caller leads it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def succeed(self, key: Hashable, flight: Flight, value: Any) -> None:
        flight.value = value
        self._end(key, flight)

    def fail(self, key: Hashable, flight: Flight, error: BaseException) -> None:
        """End the flight with ``error``; a non-``Exception`` abandons it to a waiter."""
        if isinstance(error, Exception):
            flight.error = error
        else:
            flight.abandoned = True
        self._end(key, flight)

    def _end(self, key: Hashable, flight: Flight) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            loops, flight.loops = flight.loops, []
            flight.event.set()
        for loop, future in loops:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop is closed: its waiter is gone
                pass

    async def wait_async(self, flight: Flight) -> None:
        """Wait, without blocking the event loop, until the leader is done."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if flight.event.is_set():
                return
            entry = (loop, future)
            flight.loops.append(entry)
            flight.waiting += 1
        try:
            await future
        finally:
            with self._lock:
                flight.waiting -= 1
            if not future.done():
                with self._lock:
                    if entry in flight.loops:
                        flight.loops.remove(entry)

    def __len__(self) -> int:
        return len(self._flights)

    def waiting(self) -> int:
        """How many callers wait on flights of this function right now."""
        with self._lock:
            return sum(f.waiting for f in self._flights.values())


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
