"""Async mode: at most ``workers`` coroutines on the caller's loop, each pulling queued items.

A task per item costs more than the item itself when the function is quick (creating,
scheduling and collecting a task is ~1-2 µs); a few long-lived worker coroutines, started
lazily (never more than items waiting), run item after item without a task each. When the
pipeline needs nothing before the first attempt and the item has no cache key, the worker
awaits the function itself; a failed first attempt continues in the pipeline's retry walk.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opero.concurrency.items import ItemPaths

__all__ = ["CoroutineWorkers"]


class CoroutineWorkers:
    """The worker coroutines of one async-mode map."""

    def __init__(self, paths: ItemPaths, workers: int) -> None:
        self.paths = paths
        self.queue: deque[tuple[int, Hashable | None, tuple[Any, ...]]] = deque()
        self.limit = workers
        self.live = 0

    def feed(self, items: Iterator[Any], index: int, room: int) -> int:
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

    def put(self, index: int, key: Hashable | None, call_args: tuple[Any, ...]) -> None:
        self.queue.append((index, key, call_args))
        if self.live < self.limit:
            self.live += 1
            self.paths.completion.spawn(self._work())

    async def _work(self) -> None:
        queue, paths = self.queue, self.paths
        pipeline = paths.pipeline
        direct = pipeline.direct
        func, retry_on, kwargs = pipeline.func, pipeline.retry_on, paths.kwargs
        completion = paths.completion
        counters = pipeline.counters
        pauses = pipeline.pauses
        finish, done = completion.finish, completion.done
        try:
            while queue:
                index, key, call_args = queue.popleft()
                if key is not None or not direct or pauses.active:
                    counters.entered += 1
                    await paths.whole(index, key, call_args)
                    continue
                counters.direct += 1
                try:
                    value = await func(*call_args, **kwargs)
                except retry_on as exc:
                    counters.direct_failed += 1
                    await paths.retry(index, None, None, call_args, exc)
                except Exception as exc:
                    finish(index, False, exc)
                except BaseException as exc:
                    if not paths.fatal(exc):
                        raise
                    paths.completion.stop_map(exc)
                    return
                else:
                    done.append((index, [value], None))  # finish(), inlined: the hot path
                    if completion.sleeping:
                        completion.notify()
        finally:
            self.live -= 1
