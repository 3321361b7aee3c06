"""``concurrency=N``: at most N attempts of one decorated function run at once.

One :class:`RunningLimit` serves every thread and every event loop of the program (a map's workers
too: their attempts take a slot in the caller before they are sent). A caller that finds no
free slot waits without spinning: a thread on a ``threading.Event``, a task on a future of
its own loop; :meth:`RunningLimit.release` hands the slot straight to the oldest waiter, so no
late-comer overtakes it. A waiter that is cancelled or interrupted gives back a slot it was
handed meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque

__all__ = ["RunningLimit"]

_Waiter = threading.Event | tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class RunningLimit:
    """``size`` slots, shared by threads and event loops."""

    __slots__ = ("_free", "_lock", "_waiters", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._free = size
        self._lock = threading.Lock()
        self._waiters: deque[_Waiter] = deque()

    @property
    def running(self) -> int:
        """RunningLimit taken now."""
        return self.size - self._free

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a slot, blocking the calling thread until one is free (False: none came
        within ``timeout`` seconds, and none is held)."""
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return True
            event = threading.Event()
            self._waiters.append(event)
        try:
            if event.wait(timeout):
                return True
        except BaseException:
            self._withdraw(event, handed=event.is_set())
            raise
        with self._lock:  # timed out: handed one meanwhile, or still waiting
            if event.is_set():
                return True
            self._waiters.remove(event)
        return False

    def try_acquire(self) -> bool:
        """Take a slot if one is free now, never waiting (a waiter queued first keeps its
        turn): False when none is."""
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return True
        return False

    async def acquire_async(self, timeout: float | None = None) -> bool:
        """Take a slot, awaiting (never blocking the loop) until one is free (False: none
        came within ``timeout`` seconds, and none is held)."""
        with self._lock:
            if self._free > 0 and not self._waiters:
                self._free -= 1
                return True
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            entry = (loop, future)
            self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            self._withdraw(entry, handed=future.done() and not future.cancelled())
            return False
        except BaseException:
            self._withdraw(entry, handed=future.done() and not future.cancelled())
            raise
        return True

    def _withdraw(self, waiter: _Waiter, *, handed: bool) -> None:
        with self._lock:
            waiting = waiter in self._waiters
            if waiting:
                self._waiters.remove(waiter)
        if waiting:
            return  # never handed a slot
        if handed or isinstance(waiter, threading.Event):
            self.release()

    def release(self) -> None:
        """Give a slot back: to the oldest waiter, else to the pool."""
        with self._lock:
            while self._waiters:
                waiter = self._waiters.popleft()
                if isinstance(waiter, threading.Event):
                    waiter.set()
                    return
                loop, future = waiter
                try:
                    loop.call_soon_threadsafe(self._grant, future)
                except RuntimeError:  # that loop is closed: its waiter is gone
                    continue
                return
            self._free += 1

    def _grant(self, future: asyncio.Future[None]) -> None:
        if future.done():  # cancelled before the slot arrived: pass it on
            self.release()
        else:
            future.set_result(None)
