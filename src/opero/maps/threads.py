"""Worker threads fed one attempt at a time, handing outcomes back to the caller's loop.

Each thread takes the next attempt from a shared queue as soon as it is free (no batch, so a
slow attempt never holds others back), runs it, and appends the outcome to an outbox; the
caller's loop is woken once for however many outcomes are waiting, so the cost of crossing
between threads is shared by every attempt that finished meanwhile. An ``async def`` runs on
an event loop of the thread's own.

An attempt runs under the deadline it was submitted under (calls made inside it see it). An
attempt its caller gave up (cut at its deadline) is dropped if no thread has taken it yet;
one already running runs on, and a thread is added meanwhile so other attempts do not wait
for it (the thread that ran it ends afterwards).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from opero.core.callables import is_async_callable
from opero.core.clock import CLOCK
from opero.core.deadline import current, scope
from opero.maps.attempts import attach_remote_traceback, run_one
from opero.maps.jobs import JobCallback, Whole
from opero.maps.records import Args, Function, Kwargs, Outcome, Rows
from opero.maps.transport import Callback

QUEUED, RUNNING, GIVEN_UP = 0, 1, 2

__all__ = ["ThreadTransport"]


class ThreadTransport:
    """``workers`` daemon threads running attempts of one function (started lazily)."""

    def __init__(
        self,
        fn: Function,
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
        self.inbox: queue.SimpleQueue[_Attempt | None] = queue.SimpleQueue()
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
        self._live = 0  # threads started and not ended

    def submit(self, args: Args, kwargs: Kwargs, callback: Callback) -> None:
        self._put(_Attempt(callback, args, kwargs, current()))

    def _put(self, attempt: _Attempt) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
        with self._count_lock:
            self._waiting += 1
            thread = self._more()
        if thread is not None:
            thread.start()
        self.inbox.put(attempt)

    def _more(self) -> threading.Thread | None:
        """A thread to start, when attempts wait and a thread may be added (under the lock)."""
        if self._waiting <= self._idle or self._live >= self.max_workers:
            return None
        self._live += 1
        thread = threading.Thread(
            target=self._main, name=f"opero:{self.name}:{len(self.threads)}", daemon=True
        )
        self.threads.append(thread)
        return thread

    def submit_job(
        self,
        rows: Rows,
        kwargs: Kwargs,
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

    async def invoke(self, args: Args, kwargs: Kwargs) -> object:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def done(outcome: Outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        attempt = _Attempt(done, args, kwargs, current())
        self._put(attempt)
        try:
            outcome = await future
        except asyncio.CancelledError:
            self._give_up(attempt)
            raise
        return outcome.result()

    def hedge_room(self) -> Callable[[], None] | None:
        """A thread for a hedge now: one idle with no attempt waiting for it, or one that
        may still be started (None: every worker is busy, the hedge is skipped)."""
        with self._count_lock:
            free = self._idle > self._waiting or self._live < self.max_workers
        return _nothing if free else None

    def _give_up(self, attempt: _Attempt) -> None:
        """Its caller stopped waiting for ``attempt`` (cut at its deadline)."""
        with self._count_lock:
            if not attempt.give_up():
                return  # the thread that takes it drops it
            self.max_workers += 1  # it runs on: another thread may start meanwhile
            thread = self._more()
        if thread is not None:
            thread.start()

    def _main(self) -> None:
        own_loop = asyncio.new_event_loop() if self._is_async else None
        try:
            while (job := self._take()) is not None:
                if job.state == GIVEN_UP:
                    continue
                self._hold_back()
                outcome = self._run(job, own_loop)
                if not outcome.ok:
                    self.noticed(outcome.error)  # before the other workers send theirs
                if not self._hand_back(job, outcome):
                    return
        finally:
            with self._count_lock:
                self._live -= 1
            if own_loop is not None:
                own_loop.close()

    def _take(self) -> _Attempt | None:
        """The next attempt for this thread, marked running (None: the thread ends). An
        attempt its caller gave up stays marked so (the thread drops it)."""
        with self._count_lock:
            self._idle += 1
        job = self.inbox.get()
        with self._count_lock:
            self._idle -= 1
            if job is not None:
                self._waiting -= 1
                job.take()
        return None if self._stopped else job

    def _hold_back(self) -> None:
        """Wait while a server asks every caller to wait (looking again: it may grow)."""
        while (wait := self.held_back()) > 0:
            CLOCK.sleep(wait)

    def _hand_back(self, job: _Attempt, outcome: Outcome) -> bool:
        """Queue ``outcome`` for the caller's loop; False: this thread ends instead (the
        map was abandoned, a thread was added for it, or the caller's loop is closed)."""
        if self._stopped:
            return False  # abandoned: the result is dropped
        with self._count_lock:
            if job.state == GIVEN_UP:  # a thread was added for it: this one ends
                self.max_workers -= 1
                return False
        self.outbox.append((job.callback, outcome))
        if not self._wake_pending:
            self._wake_pending = True
            assert self.loop is not None
            try:
                self.loop.call_soon_threadsafe(self._flush)
            except RuntimeError:  # the caller's loop is closed
                return False
        return True

    def _run(self, job: _Attempt, own_loop: asyncio.AbstractEventLoop | None) -> Outcome:
        if job.at is None:
            return run_one(self.fn, job.args, job.kwargs, self.timeout, own_loop)
        with scope(job.at):  # calls made inside see the deadline of the attempt's call
            return run_one(self.fn, job.args, job.kwargs, self.timeout, own_loop)

    def _flush(self) -> None:
        self._wake_pending = False
        outbox = self.outbox
        while outbox:
            callback, outcome = outbox.popleft()
            if not outcome.ok:
                attach_remote_traceback(outcome.error, outcome.tb)
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


class _Attempt:
    """One attempt waiting for (or run by) a thread: ``at`` is the deadline it was submitted
    under, ``state`` whether a thread took it and whether its caller gave it up."""

    __slots__ = ("args", "at", "callback", "kwargs", "state")

    def __init__(
        self,
        callback: Callback,
        args: Args,
        kwargs: Kwargs,
        at: float | None,
    ) -> None:
        self.callback = callback
        self.args = args
        self.kwargs = kwargs
        self.at = at
        self.state = QUEUED

    def take(self) -> None:
        """A thread took it (one its caller gave up stays so: the thread drops it)."""
        if self.state != GIVEN_UP:
            self.state = RUNNING

    def give_up(self) -> bool:
        """Its caller gave it up; whether a thread is running it."""
        running = self.state == RUNNING
        self.state = GIVEN_UP
        return running


def _nothing() -> None:
    pass


def _one(whole: Whole, n: int) -> Callback:
    return partial(whole.ended, n)
