"""Async mode: at most ``workers`` coroutines on the caller's loop, each pulling queued items.

A task per item costs more than the item itself when the function is quick (creating,
scheduling and collecting a task is ~1-2 µs); a few long-lived worker coroutines, started
lazily (never more than items waiting), run item after item without a task each. When the
judge needs nothing before the first attempt (plain) and the item has no cache key, the
worker awaits the attempt itself; any other outcome is settled by the judge. A hedge of an
item (``hedge=``) runs beside it only while fewer than ``workers`` are busy, and counts as
a busy worker meanwhile.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING

from opero.core.hedge import SPARE

if TYPE_CHECKING:
    from opero.maps.items import ItemPaths
    from opero.maps.records import Args

__all__ = ["CoroutineWorkers"]


class CoroutineWorkers:
    """The worker coroutines of one async-mode map."""

    def __init__(self, paths: ItemPaths, workers: int) -> None:
        self.paths = paths
        self.queue: deque[tuple[int, Hashable | None, Args]] = deque()
        self.limit = workers
        self.live = 0
        #: items are judged only when their first attempt fails (a map that may stop:
        #: every item judged)
        self.plain = paths.judge.plain and paths.stop is None

    def feed(self, items: Iterator[object], index: int, room: int) -> int:
        """Queue up to ``room`` uncached items from ``items`` (numbered from ``index``); the
        number queued (fewer: ``items`` ran out)."""
        args = self.paths.args
        queued = [
            (i, None, (item, *args))
            for i, item in zip(range(index, index + room), items, strict=False)
        ]
        self.queue.extend(queued)
        spawn = self.paths.completion.spawn
        while self.live < self.limit and self.live < len(self.queue):
            self.live += 1
            spawn(self._work())
        return len(queued)

    def start(self, index: int, item: object) -> None:
        """Item ``index``: answered from the cache, or queued for a worker coroutine."""
        missed = self.paths.lookup(index, item)
        if missed is None:
            return
        self.queue.append((index, missed.key, missed.args))
        if self.live < self.limit:
            self.live += 1
            self.paths.completion.spawn(self._work())

    async def _work(self) -> None:
        judge = self.paths.judge
        if judge.hedge is not None:
            SPARE.set((judge, self._spare))  # (this task's own context)
        try:
            if self.plain:
                await self._work_plain()
            else:
                await self._work_judged()
        finally:
            self.live -= 1

    async def _work_judged(self) -> None:
        """Every item's whole call driven by the judge."""
        queue, paths, counters = self.queue, self.paths, self.paths.counters
        while queue:
            index, key, call_args = queue.popleft()
            counters.entered += 1
            await paths.whole(index, key, call_args)

    async def _work_plain(self) -> None:
        """An uncached item's first attempt awaited here, and judged only if it fails."""
        queue, paths = self.queue, self.paths
        judge = paths.judge
        invoke, kwargs = paths.invoke, paths.kwargs
        func = judge.func if judge.timeout is None else None
        completion = paths.completion
        counters, plain_started, pauses = judge.counters, judge.plain_started, judge.pauses
        done = completion.done
        while queue:
            index, key, call_args = queue.popleft()
            if key is not None or pauses.active:
                counters.entered += 1
                await paths.whole(index, key, call_args)
                continue
            plain_started()
            try:
                if func is not None:  # no timeout: the function itself, no extra frame
                    value = await func(*call_args, **kwargs)
                else:
                    value = await invoke(call_args, kwargs)
            except BaseException as exc:  # judged in the item's retry walk
                await paths.retry(index, None, None, call_args, exc)
                if completion.fatal is not None:
                    return
            else:
                done.append((index, [value], None))  # finish(), inlined: the hot path
                if completion.sleeping:
                    completion.notify()

    def _spare(self) -> Callable[[], None] | None:
        """A worker for a hedge of an item, if fewer than ``workers`` are busy: counted
        as one while the hedge runs (None: none is free, the hedge is skipped)."""
        if self.live >= self.limit:
            return None
        self.live += 1
        return self._spare_back

    def _spare_back(self) -> None:
        self.live -= 1
