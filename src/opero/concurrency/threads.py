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

from opero.concurrency.attempts import Outcome, run_one
from opero.core.callables import is_async_callable
from opero.core.clock import CLOCK
from opero.core.pauses import Pauses

__all__ = ["ThreadWorkers"]


class ThreadWorkers:
    """``workers`` daemon threads running attempts of one function."""

    def __init__(
        self,
        fn: Callable[..., Any],
        workers: int,
        deliver: Callable[[list[tuple[Any, Outcome]]], None],
        timeout: float | None = None,
        name: str = "",
        pauses: Pauses | None = None,
        early_pause: bool = False,
    ) -> None:
        self.pauses = pauses
        #: attempts are of the function itself (no fallback): a worker may set its pause
        self.early_pause = early_pause
        self.fn = fn
        self.timeout = timeout
        self.deliver = deliver
        self.inbox: queue.SimpleQueue[tuple[Any, tuple[Any, ...], dict[str, Any]] | None] = (
            queue.SimpleQueue()
        )
        self.outbox: deque[tuple[Any, Outcome]] = deque()
        self.loop = asyncio.get_running_loop()
        self._wake_pending = False
        self._stopped = False
        self._is_async = is_async_callable(fn)
        self.max_workers = workers
        self.name = name
        self.threads: list[threading.Thread] = []  # started lazily, as attempts arrive
        self._count_lock = threading.Lock()
        self._idle = 0  # threads waiting for an attempt
        self._waiting = 0  # attempts not yet taken by a thread

    def submit(self, token: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
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
        self.inbox.put((token, args, kwargs))

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
                token, args, kwargs = job
                pauses = self.pauses
                while pauses is not None and pauses.active and not CLOCK.zero_waits:
                    wait = pauses.remaining(None)  # a server asked every caller to wait
                    if wait <= 0:
                        break
                    pauses.counters.waited(wait)
                    CLOCK.sleep(wait)  # then look again: the pause may have grown
                outcome = run_one(self.fn, args, kwargs, self.timeout, own_loop)
                if pauses is not None and not outcome[0] and self.early_pause:
                    pauses.server_said(outcome[1])  # before the others send theirs
                if self._stopped:
                    return  # abandoned: the result is dropped
                self.outbox.append((token, outcome))
                if not self._wake_pending:
                    self._wake_pending = True
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
        done: list[tuple[Any, Outcome]] = []
        while outbox:
            done.append(outbox.popleft())
        if done:
            self.deliver(done)

    def stop(self, *, abort: bool = False) -> None:
        """Let the threads exit once idle; ``abort`` drops queued attempts and results
        (running attempts cannot be stopped: they finish on their own)."""
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
