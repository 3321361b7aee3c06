"""Worker threads fed one attempt at a time, handing outcomes back to the caller's loop.

Each thread takes the next attempt from a shared queue as soon as it is free (no batch, so a
slow attempt never holds others back), runs it, and appends the outcome to an outbox; the
caller's loop is woken once for however many outcomes are waiting, so the cost of crossing
between threads is shared by every attempt that finished meanwhile. An ``async def`` runs on
an event loop of the thread's own.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from opero.core.callables import is_async_callable
from opero.core.clock import CLOCK
from opero.maps.attempts import Outcome, attach_remote_traceback, run_one
from opero.maps.jobs import JobCallback, Whole
from opero.maps.transport import Callback, invoke_on

__all__ = ["ThreadTransport"]


class ThreadTransport:
    """``workers`` daemon threads running attempts of one function (started lazily)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        workers: int,
        *,
        name: str,
        timeout: float | None,
        held_back: Callable[[], float],
        noticed: Callable[[BaseException], None],
    ) -> None:
        #: seconds every attempt must still wait (a pause of the function)
        self.held_back = held_back
        #: told of a failure as soon as a worker sees it (a server delay pauses at once)
        self.noticed = noticed
        self.fn = fn
        self.timeout = timeout
        self.inbox: queue.SimpleQueue[tuple[Any, tuple[Any, ...], dict[str, Any]] | None] = (
            queue.SimpleQueue()
        )
        self.outbox: deque[tuple[Callback, Outcome]] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False
        self._stopped = False
        self._shut = False
        self._is_async = is_async_callable(fn)
        self.max_workers = workers
        self.name = name
        self.threads: list[threading.Thread] = []  # started lazily, as attempts arrive
        self._count_lock = threading.Lock()
        self._idle = 0  # threads waiting for an attempt
        self._waiting = 0  # attempts not yet taken by a thread

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], callback: Callback) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        with self._count_lock:
            self._waiting += 1
            start = self._waiting > self._idle and len(self.threads) < self.max_workers
            if start:
                thread = threading.Thread(
                    target=self._main, name=f"opero:{self.name}:{len(self.threads)}", daemon=True
                )
                self.threads.append(thread)
        if start:
            thread.start()
        self.inbox.put((callback, args, kwargs))

    def submit_job(
        self,
        rows: list[Any],
        kwargs: dict[str, Any],
        callback: JobCallback,
        *,
        bare: bool,
        fresh: bool = False,
    ) -> None:
        whole = Whole(callback, len(rows))
        for n, row in enumerate(rows):
            self.submit((row,) if bare else row, kwargs, _one(whole, n))

    def spans(self, ready: int) -> list[tuple[int, int]]:
        return [(n, n + 1) for n in range(ready)]

    def withdraw(self, marker: BaseException) -> None:
        pass  # a thread map that may stop feeds no job in bulk

    def set_in_flight(self, count: int) -> None:
        pass  # threads start as attempts arrive

    async def invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await invoke_on(self, args, kwargs)

    def _main(self) -> None:
        own_loop = asyncio.new_event_loop() if self._is_async else None
        try:
            while True:
                with self._count_lock:
                    self._idle += 1
                job = self.inbox.get()
                with self._count_lock:
                    self._idle -= 1
                    if job is not None:
                        self._waiting -= 1
                if job is None or self._stopped:
                    return
                callback, args, kwargs = job
                while (wait := self.held_back()) > 0:  # a server asked every caller to wait
                    CLOCK.sleep(wait)  # then look again: the pause may have grown
                outcome = run_one(self.fn, args, kwargs, self.timeout, own_loop)
                if not outcome[0]:
                    self.noticed(outcome[1])  # before the other workers send theirs
                if self._stopped:
                    return  # abandoned: the result is dropped
                self.outbox.append((callback, outcome))
                if not self._wake_pending:
                    self._wake_pending = True
                    assert self.loop is not None
                    try:
                        self.loop.call_soon_threadsafe(self._flush)
                    except RuntimeError:  # the caller's loop is closed
                        return
        finally:
            if own_loop is not None:
                own_loop.close()

    def _flush(self) -> None:
        self._wake_pending = False
        outbox = self.outbox
        while outbox:
            callback, outcome = outbox.popleft()
            if not outcome[0]:
                attach_remote_traceback(outcome[1], outcome[2])
            callback(outcome)

    async def close(self, *, abort: bool = False) -> None:
        self.shutdown(abort=abort)

    def shutdown(self, *, abort: bool = False) -> None:
        """Let the threads exit once idle; ``abort`` drops queued attempts and results
        (running attempts cannot be stopped: they finish on their own)."""
        if self._shut:
            return
        self._shut = True
        if abort:
            self._stopped = True
            try:
                while True:
                    self.inbox.get_nowait()
            except queue.Empty:
                pass
        with self._count_lock:
            started = len(self.threads)
            self.max_workers = started  # no new thread after a stop
        for _ in range(started):
            self.inbox.put(None)
        if not abort:  # idle threads end at once; one still running an attempt is left
            deadline = time.monotonic() + 0.2
            for thread in self.threads:
                thread.join(max(0.0, deadline - time.monotonic()))


def _one(whole: Whole, n: int) -> Callback:
    def done(outcome: Outcome) -> None:
        ok, value, tb = outcome
        whole.fill(n, [value if ok else None], {} if ok else {0: (value, tb)})

    return done
