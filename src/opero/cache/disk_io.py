"""The disk I/O of async callers: one thread per cache directory, working in batches.

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
from collections.abc import Callable
from typing import Any

__all__ = ["IDLE_SECONDS", "IoThread", "Outcome"]

IDLE_SECONDS = 5.0  #: an I/O thread without work ends after this long
Outcome = tuple[bool, Any]  #: (True, result) or (False, exception)
_Request = tuple[Any, asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


class IoThread:
    """Runs ``serve(jobs) -> outcomes`` on a thread of its own for async callers."""

    def __init__(self, serve: Callable[[list[Any]], list[Outcome]], name: str) -> None:
        self._serve = serve
        self._name = name
        self._requests: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    def submit(self, job: Any) -> asyncio.Future[Any]:
        """Queue ``job``; the returned future (of the running loop) gets its outcome."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._requests.put((job, loop, future))
        if not self._running:
            with self._lock:
                if not self._running:
                    self._running = True
                    threading.Thread(target=self._run, name=self._name, daemon=True).start()
        return future

    def _run(self) -> None:
        requests = self._requests
        while True:
            try:
                batch = [requests.get(timeout=IDLE_SECONDS)]
            except queue.Empty:
                with self._lock:
                    if requests.empty():
                        self._running = False
                        return
                continue
            while True:
                try:
                    batch.append(requests.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes = self._serve([job for job, _, _ in batch])
            except BaseException as exc:  # serve reports per job; this is a last resort
                outcomes = [(False, exc)] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Outcome]]] = {}
            for (_job, loop, future), outcome in zip(batch, outcomes, strict=True):
                by_loop.setdefault(loop, []).append((future, outcome))
            for loop, results in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_deliver, results)
                except RuntimeError:  # the loop is closed: nobody waits for these
                    pass
            del batch, outcomes, by_loop


def _deliver(results: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for future, (ok, value) in results:
        if future.done():  # the caller was cancelled
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
