"""The disk I/O of async callers: one thread per cache directory, working in batches (its
jobs: a :class:`Read` or an :class:`Entry` to write).

An event loop never touches the disk. Its lookups and stores are queued to the directory's
I/O thread, which takes everything queued when it wakes: the lookups are read one by one,
the stores are written in one SQLite transaction, and the results go back to each event loop
in one callback per loop. Under load (an async map of many items) one wake-up, one commit
and one callback serve a whole batch. The thread ends after ``IDLE_SECONDS`` without work
and starts again when needed (also in a forked child).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["IDLE_SECONDS", "Entry", "IoThread", "Outcome", "Read"]

IDLE_SECONDS = 5.0  #: an I/O thread without work ends after this long
Outcome = tuple[bool, Any]  #: (True, result) or (False, exception)
J = TypeVar("J")  #: what a job is (the serving side says)
#: what an outcome goes to: the future its caller awaits and the loop it runs on
_Reply = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class Read(NamedTuple):
    """A lookup queued to the I/O thread."""

    key: Hashable


class Entry(NamedTuple):
    """A value to store: its key, its sealed bytes, its seconds to live (None: no expiry)
    and the tag of its function's entries."""

    key: Hashable
    data: bytes
    expire: float | None
    tag: str


class IoThread(Generic[J]):
    """Runs ``serve(jobs) -> outcomes`` on a thread of its own for async callers."""

    def __init__(self, serve: Callable[[list[J]], list[Outcome]], name: str) -> None:
        self._serve = serve
        self._name = name
        self._requests: queue.SimpleQueue[tuple[J, _Reply]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def submit(self, job: J) -> asyncio.Future[Any]:
        """Queue ``job``; the returned future (of the running loop) gets its outcome."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._requests.put((job, (loop, future)))
        if not self._running:
            with self._lock:
                if not self._running:
                    self._running = True
                    threading.Thread(target=self._run, name=self._name, daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            if not batch:
                continue
            try:
                outcomes = self._serve([job for job, _ in batch])
            except BaseException as exc:  # serve reports per job; this is a last resort
                outcomes = [(False, exc)] * len(batch)
            _reply([reply for _, reply in batch], outcomes)
            del batch, outcomes

    def _take(self) -> list[tuple[J, _Reply]] | None:
        """Everything queued, once something is (empty: woken with nothing to do); None when
        the thread ends, after ``IDLE_SECONDS`` without work."""
        requests = self._requests
        try:
            batch = [requests.get(timeout=IDLE_SECONDS)]
        except queue.Empty:
            with self._lock:
                if requests.empty():
                    self._running = False
                    return None
            return []
        while True:
            try:
                batch.append(requests.get_nowait())
            except queue.Empty:
                return batch


def _reply(replies: list[_Reply], outcomes: list[Outcome]) -> None:
    """Send each outcome to its caller's loop: one callback per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
    for (loop, future), outcome in zip(replies, outcomes, strict=True):
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, results in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, results)
        except RuntimeError:  # the loop is closed: nobody waits for these
            pass


def _deliver(results: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, (ok, value) in results:
        if future.done():  # the caller was cancelled
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
