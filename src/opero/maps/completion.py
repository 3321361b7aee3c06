"""Completion of a map's items: finished runs of results, the wake-up of the stream, the
tasks of items that needed one, and the hand-out of runs in input or completion order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opero.maps.stop import MapStop

__all__ = ["FAILED", "HELD_MAX", "Completion", "Run"]

#: an ordered map holds at most this many finished results (or its window of items in
#: flight, if larger) for an earlier item still pending, on top of that window: one slow
#: item does not stop the others until that many results wait behind it
HELD_MAX = 16_384

#: a run of consecutive results: (first index, values, positions that hold an exception)
Run = tuple[int, list[Any], frozenset[int] | None]
FAILED = frozenset({0})  # the one value of a single-item run is an exception


#: told of each item as it ends: whether it succeeded
Tally = Callable[[bool], None]


class Counted(deque[Run]):
    """Finished runs that tell the map's stop rule (and its progress bar) of each item as
    it ends (every path appends its results here, in completion order)."""

    def __init__(self, stop: MapStop | None, tally: Tally | None = None) -> None:
        super().__init__()
        self.stop = stop
        self.tally = tally

    def append(self, run: Run, /) -> None:
        super().append(run)
        _, values, failed = run
        stop, tally = self.stop, self.tally
        for pos, value in enumerate(values):
            ok = failed is None or pos not in failed
            if stop is not None:
                stop.ended(ok, value if not ok else None)
            if tally is not None:
                tally(ok)


class Completion:
    """Where finished results wait until the stream hands them out."""

    def __init__(
        self, ordered: bool, stop: MapStop | None = None, tally: Tally | None = None
    ) -> None:
        self.ordered = ordered
        #: when the map stops starting items (``fail_fast``, its deadline), or None
        self.stop = stop
        self.tally = tally
        counted = stop is not None or tally is not None
        self.done: deque[Run] = Counted(stop, tally) if counted else deque()
        #: set when something finishes while the stream waits (bound to the loop that
        #: first waits on it)
        self.wake = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self._held: dict[int, Run] = {}
        #: how many finished results ``_held`` keeps for an earlier item still pending
        #: (``ordered``); they do not count toward the map's window of items in flight
        self.held = 0
        self._next_out = 0
        #: a BaseException raised by the function (SystemExit, KeyboardInterrupt, ...): the
        #: map stops and it propagates to the caller
        self.fatal: BaseException | None = None
        #: the stream waits for a wake-up (a finish while it runs needs none)
        self.sleeping = False

    def finish(self, index: int, ok: bool, value: object) -> None:
        """Item ``index`` ended with ``value`` (its result, or its exception)."""
        self.done.append((index, [value], None if ok else FAILED))
        if self.sleeping:
            self.notify()

    def refuse(self, index: int, exc: Exception) -> None:
        """Item ``index`` was never started: the map stopped (not counted as an item that
        failed)."""
        deque.append(self.done, (index, [exc], FAILED))
        if self.tally is not None:
            self.tally(False)
        if self.sleeping:
            self.notify()

    def stop_map(self, exc: BaseException) -> None:
        """The function raised ``exc``, not an ``Exception``: stop the whole map with it."""
        if self.fatal is None:
            self.fatal = exc
        self.notify()

    def notify(self) -> None:
        self.sleeping = False
        self.wake.set()

    def raise_fatal(self) -> None:
        """Raise the BaseException that stopped the map, if one did."""
        if self.fatal is not None:
            raise self.fatal

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` as a task of this map (cancelled when the map ends)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def take(self) -> list[Run]:
        """The runs that may be handed out now: in input order when ``ordered`` (later runs
        are held back), else as they finished."""
        chunk: list[Run] = []
        done = self.done
        if not self.ordered:
            chunk.extend(done)
            done.clear()
            return chunk
        held = self._held
        next_out = self._next_out
        count = self.held
        while done:
            run = done.popleft()
            if run[0] == next_out:
                chunk.append(run)
                next_out += len(run[1])
                while held and next_out in held:
                    run = held.pop(next_out)
                    chunk.append(run)
                    n = len(run[1])
                    next_out += n
                    count -= n
            else:
                held[run[0]] = run
                count += len(run[1])
        self._next_out = next_out
        self.held = count
        return chunk

    async def wait(self) -> None:
        """Until something finishes (returns at once if something already has)."""
        if not self.done and self.fatal is None:
            self.wake.clear()
            self.sleeping = True
            try:
                await self.wake.wait()
            finally:
                self.sleeping = False

    def cancel_soon(self) -> None:
        """Cancel the map's tasks now (each is cancelled at its next ``await``)."""
        for task in list(self.tasks):
            task.cancel()

    async def cancel_tasks(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
