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
from collections import deque
from collections.abc import Hashable, Iterable
from itertools import repeat
from typing import Any

__all__ = ["Flight", "GroupFlight", "SingleFlight"]

#: a task waiting on a flight: its event loop, and the future it awaits there
Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class Flight:
    """One in-progress computation of a key.

    Attributes start as class-level defaults, so creating a flight (once per cache miss)
    costs an allocation and nothing else.
    """

    done = False
    event: threading.Event | None = None  # made when a thread first waits
    value: Any = None
    error: BaseException | None = None
    abandoned = False
    loops: list[Waiter] | tuple[()] = ()
    waiting = 0  #: callers waiting on this flight (observability and tests)

    def outcome(self) -> Any:
        """The leader's value, or raise the leader's error."""
        if self.error is not None:
            raise self.error
        return self.value


class GroupFlight(Flight):
    """The flights of many keys led by one map job, as one object.

    A map's misses join their flights in bulk: every key maps to this one object (no flight
    per key to create or end). Whoever joins one of its keys meanwhile gets a
    :class:`Flight` of its own, made then (a *member*), which the leader ends with its key.
    """

    def __init__(self) -> None:
        self.members: dict[Hashable, Flight] = {}


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
                if type(flight) is GroupFlight:
                    flight = self._member(key, flight)
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def _member(self, key: Hashable, group: GroupFlight) -> Flight:
        """The flight of one key of ``group`` (made on first use); under the lock."""
        flight = group.members.get(key)
        if flight is None:
            flight = group.members[key] = self._flights[key] = Flight()
        return flight

    def _resolve(self, key: Hashable, flight: Flight) -> Flight | None:
        """The flight to end for ``key``: a group's member, or None if nobody joined it (the
        key is then simply released)."""
        if type(flight) is not GroupFlight:
            return flight
        with self._lock:
            member = flight.members.pop(key, None)
            if member is None and self._flights.get(key) is flight:
                del self._flights[key]
        return member

    def join_many(self, keys: list[Hashable | None]) -> tuple[list[Flight | None], list[int]]:
        """:meth:`join` for many keys under one lock: the flight of each key (None for a None
        key) and the positions whose key someone else leads (a repeated key follows its
        first occurrence)."""
        out: list[Flight | None] = []
        followers: list[int] = []
        flights = self._flights
        with self._lock:
            # nobody leads any of these unique keys (C-level checks): they lead one group
            fresh = not flights or list(map(flights.get, keys)).count(None) == len(keys)
            if fresh and None not in keys and len(set(keys)) == len(keys):
                group = GroupFlight()
                flights.update(zip(keys, repeat(group)))
                return [group] * len(keys), followers
            for n, key in enumerate(keys):
                if key is None:
                    out.append(None)
                    continue
                flight = flights.get(key)
                if flight is None:
                    flight = flights[key] = Flight()
                else:
                    if type(flight) is GroupFlight:
                        flight = self._member(key, flight)
                    followers.append(n)
                out.append(flight)
        return out, followers

    def succeed_many(
        self, keys: list[Hashable | None], flights: list[Flight | None], values: list[object]
    ) -> None:
        """:meth:`succeed` for many flights (None entries skipped); one lock."""
        group = flights[0] if flights else None
        if type(group) is GroupFlight:
            self._succeed_group(group, keys, flights, values)
            return
        with self._lock:
            woken = self._settle(keys, flights, values)
        for flight, loops in woken:
            _notify(flight.event, loops)

    def _succeed_group(
        self,
        group: GroupFlight,
        keys: list[Hashable | None],
        flights: list[Flight | None],
        values: list[object],
    ) -> None:
        """End a map job's group: release every key at once when nobody joined one."""
        with self._lock:
            if not group.members:  # nobody joined: release every key (C-level loop)
                deque(map(self._flights.pop, keys, repeat(None)), maxlen=0)
                return
        for key, flight, value in zip(keys, flights, values, strict=True):
            if key is not None and flight is not None:
                self.succeed(key, flight, value)

    def _settle(
        self, keys: list[Hashable | None], flights: list[Flight | None], values: list[object]
    ) -> list[tuple[Flight, list[Waiter]]]:
        """Give each flight its value and end it (under the lock); the flights that have
        waiters to wake, with their event loops."""
        woken: list[tuple[Flight, list[Waiter]]] = []
        table = self._flights
        for key, flight, value in zip(keys, flights, values, strict=True):
            if flight is None:
                continue
            flight.value = value
            if table.get(key) is flight:
                del table[key]
            flight.done = True
            if flight.event is not None or flight.loops:
                woken.append((flight, list(flight.loops)))
                flight.loops = ()
        return woken

    def succeed(self, key: Hashable, flight: Flight, value: object) -> None:
        own = self._resolve(key, flight)
        if own is None:
            return
        own.value = value
        self._end(key, own)

    def fail(self, key: Hashable, flight: Flight, error: BaseException) -> None:
        """End the flight with ``error``; a non-``Exception`` abandons it to a waiter."""
        own = self._resolve(key, flight)
        if own is None:
            return
        flight = own
        if isinstance(error, Exception):
            flight.error = error
        else:
            flight.abandoned = True
        self._end(key, flight)

    def wait(self, flight: Flight) -> None:
        """Block the calling thread until the leader of ``flight`` is done."""
        with self._lock:
            if flight.done:
                return
            if flight.event is None:
                flight.event = threading.Event()
            event = flight.event
            flight.waiting += 1
        try:
            event.wait()
        finally:
            with self._lock:
                flight.waiting -= 1

    def _end(self, key: Hashable, flight: Flight) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            loops, flight.loops = flight.loops, ()
            flight.done = True
            event = flight.event
        _notify(event, loops)

    async def wait_async(self, flight: Flight) -> None:
        """Wait, without blocking the event loop, until the leader is done."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if flight.done:
                return
            entry = (loop, future)
            flight.loops = [*flight.loops, entry]
            flight.waiting += 1
        try:
            await future
        finally:
            with self._lock:
                flight.waiting -= 1
                if entry in flight.loops:  # cancelled before the leader finished
                    flight.loops = [e for e in flight.loops if e is not entry]

    def __len__(self) -> int:
        return len(self._flights)

    def waiting(self) -> int:
        """How many callers wait on flights of this function right now."""
        with self._lock:
            return sum(f.waiting for f in self._flights.values())


def _notify(event: threading.Event | None, loops: Iterable[Waiter]) -> None:
    """Wake a flight's waiting threads and, on its own loop, each waiting task."""
    if event is not None:
        event.set()
    for loop, future in loops:
        try:
            loop.call_soon_threadsafe(_wake, future)
        except RuntimeError:  # that loop is closed: its waiter is gone
            pass


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
