"""One worker process: a ``multiprocessing.Process`` fed batches over a pipe.

Each worker has its own pipe, so a worker that dies breaks nothing but the batch it held
(unlike a shared ``ProcessPoolExecutor``, where one death breaks every future). The caller
talks to a worker through two helper threads (one writes batches, one reads results), so
the event loop of the caller never blocks on a pipe. Workers ignore SIGINT: the caller
handles Ctrl-C
and terminates them.
"""

from __future__ import annotations

import mmap
import queue
import threading
from collections import deque
from concurrent.futures import Future, InvalidStateError
from multiprocessing.context import BaseContext

from opero.errors import UnpicklableError, WorkerCrashedError
from opero.maps.crossing import attempts_in, unloadable_answer, unreadable_error
from opero.maps.launch import forget, launch
from opero.maps.records import Results, Segment
from opero.maps.spill import (
    Finished,
    Part,
    began,
    finished_outcomes,
    joined,
    loading,
    read_spill,
    set_pause,
)
from opero.maps.targets import ByValue, FunctionRef
from opero.maps.worker_side import Unreadable

__all__ = ["ProcessWorker", "WorkerDied"]


class WorkerDied(Exception):
    """The worker process ended while the caller waited for it."""

    def __init__(
        self,
        exitcode: int | None,
        running: bool = True,
        finished: Finished | None = None,
    ) -> None:
        super().__init__(f"worker process died (exit code {exitcode})")
        self.exitcode = exitcode
        #: the batch was running when the process died (False: it was only queued behind)
        self.running = running and finished is not None
        #: the outcomes it had finished (by position) and whether all its attempts had
        #: started (an async batch); None when it never began the batch
        self.finished = finished

    def crash_error(self, name: str) -> WorkerCrashedError:
        return WorkerCrashedError(
            f"{name}: the worker process died while running this attempt "
            f"(exit code {self.exitcode})"
        )


def _settle(future: Future[Results], outcome: Results | BaseException) -> None:
    """Complete ``future`` with ``outcome`` (an exception: failed with it) unless its waiter
    already gave up on it (cancelled it)."""
    if future.done():
        return
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:  # cancelled meanwhile
        pass


class ProcessWorker:
    """A live worker process, with a writer and a reader thread on the caller's side.

    :meth:`submit` queues a batch and returns a ``concurrent.futures.Future`` of its results;
    several batches may be outstanding (the worker runs them in order), so the next batch
    is already in the pipe when the worker finishes one. Neither side ever blocks the
    caller's event loop on the pipe.
    """

    def __init__(
        self,
        ctx: BaseContext,
        ref: FunctionRef | ByValue,
        *,
        start_io: bool = True,
    ) -> None:
        self.conn, self.process, self.spill = launch(ctx, ref)
        self._lock = threading.Lock()
        self._join_lock = threading.Lock()
        self._outbox: queue.SimpleQueue[tuple[list[Segment], Future[Results]] | None] = (
            queue.SimpleQueue()
        )
        self._sent: deque[tuple[Future[Results], list[Segment]]] = deque()
        self._dead: WorkerDied | None = None
        self._answered = 0  # batches answered: the running one is number _answered + 1
        self.submitted = 0  # batches submitted (the n-th is the worker's batch number n)
        self._asked = False  # the writer was told to end (one sentinel is enough)
        self._parts: list[Part] = []  # outcomes of the running batch sent ahead
        name = f"opero-io:{ref.qualname}:{self.process.pid}"
        self._writer = threading.Thread(target=self._write, name=name + ":w", daemon=True)
        self._reader = threading.Thread(target=self._read, name=name + ":r", daemon=True)
        if start_io:
            self.start_io()

    def start_io(self) -> None:
        """Start the writer and reader threads (after every fork of a group: a fork while
        helper threads run is what Python warns about)."""
        self._writer.start()
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def submit(self, batch: list[Segment]) -> Future[Results]:
        """Queue ``batch``; the future fails with :class:`WorkerDied` if the process ends
        first, or with the pickling error if the batch cannot be sent."""
        future: Future[Results] = Future()
        with self._lock:
            if self._dead is not None:
                _settle(future, self._dead)
                return future
            self.submitted += 1
        self._outbox.put((batch, future))
        return future

    def began(self, number: int) -> bool:
        """Whether the worker has begun its ``number``-th batch (read from shared memory)."""
        return began(self.spill) >= number

    def _write(self) -> None:
        while (job := self._outbox.get()) is not None:
            batch, future = job
            with self._lock:
                dead = self._dead
                if dead is None:  # before sending: the answer may come at once
                    self._sent.append((future, batch))
            if dead is not None:
                _settle(future, dead)
                continue
            try:
                self.conn.send(batch)
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                self._die()
                return
            except Exception as exc:  # the batch cannot be pickled: nothing was sent
                self._unsent(future, exc)
        try:
            self.conn.send_bytes(b"")  # the worker's signal to stop
        except Exception:
            pass

    def _unsent(self, future: Future[Results], exc: Exception) -> None:
        """A batch that cannot be pickled fails; the worker never saw it."""
        with self._lock:
            if self._sent and self._sent[-1][0] is future:
                self._sent.pop()
        error = UnpicklableError(
            f"cannot send to a worker process, it cannot be pickled: {exc!r}; "
            "pass picklable items and arguments, or use mode='thread'"
        )
        error.__cause__ = exc
        _settle(future, error)

    def _read(self) -> None:
        while True:
            try:
                results: Results | Part | Unreadable | Exception = self.conn.recv()
            except (EOFError, OSError):
                self._die()
                return
            except Exception as exc:  # the results could not be unpickled here
                results = exc
            if isinstance(results, Part):
                with self._lock:
                    self._parts.append(results)
                continue
            with self._lock:
                sent = self._sent.popleft() if self._sent else None
                parts, self._parts = self._parts, []
                self._answered += 1
            if sent is None:
                continue
            future, batch = sent
            _answer(future, batch, results, parts)

    def _join(self, timeout: float) -> int | None:
        """Wait for the process to end; one thread at a time (two concurrent waits on one
        child can lose its exit code)."""
        with self._join_lock:
            self.process.join(timeout=timeout)
            return self.process.exitcode

    def _die(self) -> None:
        code = self._join(1.0)
        queued = WorkerDied(code, running=False)
        with self._lock:
            if self._dead is None:
                self._dead = queued
            waiting, self._sent = list(self._sent), deque()
            parts, self._parts = self._parts, []
            running = self._answered + 1
        error = self._death_error(code, waiting, parts, running)
        for n, (future, _batch) in enumerate(waiting):  # the oldest one sent was running
            _settle(future, error if n == 0 else queued)
        while True:  # fail what the writer has not taken yet
            try:
                job = self._outbox.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _settle(job[1], queued)
        self._outbox.put(None)  # the writer ends (a sentinel drained above is put back)

    def _death_error(
        self,
        code: int | None,
        waiting: list[tuple[Future[Results], list[Segment]]],
        parts: list[Part],
        running: int,
    ) -> BaseException:
        """The error of the batch that was running when the worker died."""
        if waiting and loading(self.spill, running) and attempts_in(waiting[0][1]) > 1:
            # it died unpickling a batch of several: which one killed it is unknown, so
            # they run again one by one (a crash of one alone is its own attempt's)
            return WorkerCrashedError(f"the worker process died loading a batch (exit code {code})")
        finished = finished_outcomes(parts, read_spill(self.spill, running))
        return WorkerDied(code, finished=finished)

    def pause_until(self, until: float) -> None:
        """Hold back this worker's next attempts until ``until`` (time.time())."""
        set_pause(self.spill, until)

    def ask_to_stop(self) -> None:
        """Tell the worker to exit once its batches are done (``stop`` then waits for it):
        asking every worker first lets them exit together."""
        if not self._asked:
            self._asked = True
            self._outbox.put(None)

    def stop(self) -> None:
        """Ask the worker to exit when it is done; kill it if it does not."""
        self.ask_to_stop()
        if self._join(2.0) is None:
            self.kill()
        self._close()

    def kill(self) -> None:
        """End the worker now (Ctrl-C, a timed-out attempt); outstanding batches fail."""
        with self._join_lock:
            if self.process.exitcode is None:
                try:
                    self.process.kill()
                except (ProcessLookupError, OSError):  # it ended meanwhile
                    pass
        self._join(5.0)
        self._outbox.put(None)
        self._close()

    def _close(self) -> None:
        self._reader.join(timeout=5.0)
        forget(self.conn)
        try:
            self.conn.close()
        except OSError:
            pass
        self._writer.join(timeout=5.0)
        if isinstance(self.spill, mmap.mmap):
            try:
                self.spill.close()
            except BufferError:  # a late reader still holds a view: freed with it
                pass


def _answer(
    future: Future[Results],
    batch: list[Segment],
    results: Results | Unreadable | Exception,
    parts: list[Part],
) -> None:
    """Settle the future of ``batch`` with what the worker answered."""
    if isinstance(results, Unreadable):
        _settle(future, unreadable_error(batch, results.reason))
    elif isinstance(results, Exception):
        _settle(future, unloadable_answer(batch, results))
    else:
        _settle(future, joined(parts, results) if parts else results)
