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
import multiprocessing
import os
import pickle
import queue
import threading
import weakref
from collections import deque
from concurrent.futures import Future, InvalidStateError
from multiprocessing.connection import Connection
from typing import Any

from opero.errors import UnpicklableError, WorkerCrashedError
from opero.maps.attempts import ByValue, FunctionRef, Outcome, Results, Segment
from opero.maps.crossing import attempts_in, unloadable_answer, unreadable_error
from opero.maps.parent_watch import preload
from opero.maps.spill import SIZE as SPILL_SIZE
from opero.maps.spill import (
    Part,
    began,
    finished_outcomes,
    joined,
    loading,
    read_spill,
    set_pause,
)
from opero.maps.worker_side import Unreadable, serve

__all__ = ["ProcessWorker", "WorkerDied"]


class WorkerDied(Exception):
    """The worker process ended while the caller waited for it."""

    def __init__(
        self,
        exitcode: int | None,
        running: bool = True,
        finished: tuple[dict[int, Outcome], bool] | None = None,
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


#: the caller-side pipe ends of live workers; a forked worker closes the ones it inherited,
#: so a worker's pipe is held only by the caller and that worker (a dead worker's pipe then
#: breaks at once, and no writer thread can block on it)
_OPEN: weakref.WeakSet[Connection] = weakref.WeakSet()
_FORK_LOCK = threading.Lock()  # held across a fork: a forked child gets a fresh one
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_FORK_LOCK", threading.Lock()))


def _worker_main(
    conn: Connection,
    ref: FunctionRef | ByValue | bytes,
    raw: Any,
    caller: int,
) -> None:
    # A process map inside this worker may start workers of its own: they end by themselves
    # when this worker ends (they watch it), so the daemon rule is not needed here.
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    for inherited in list(_OPEN):
        if inherited is not conn:
            try:
                inherited.close()
            except OSError:
                pass
    _OPEN.clear()
    serve(conn, ref, raw, caller)


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Complete ``future`` unless its waiter already gave up on it (cancelled it)."""
    if future.done():
        return
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
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
        ctx: Any,
        ref: FunctionRef | ByValue,
        *,
        start_io: bool = True,
    ) -> None:
        with _FORK_LOCK:  # no other opero worker forks while these pipe ends are shared
            self.conn, child = ctx.Pipe(duplex=True)
            _OPEN.add(self.conn)
            _OPEN.add(child)  # a worker forked meanwhile elsewhere closes it too
            #: outcomes the worker finished in its current batch (read if it dies)
            #: (anonymous shared memory under fork: no file descriptor to keep)
            self.spill: Any = (
                mmap.mmap(-1, SPILL_SIZE)
                if ctx.get_start_method() == "fork"
                else ctx.RawArray("B", SPILL_SIZE)
            )
            # under spawn and forkserver the function travels pickled, so a worker that
            # cannot load it fails its attempts instead of dying at start, again and again
            forked = ctx.get_start_method() == "fork"
            target = ref if forked else pickle.dumps(ref)
            if forked:
                preload()
            self.process: multiprocessing.process.BaseProcess = ctx.Process(
                target=_worker_main,
                args=(child, target, self.spill, os.getpid()),
                name=f"opero-worker:{ref.qualname}",
                daemon=True,
            )
            try:
                self.process.start()
            finally:
                _OPEN.discard(child)
                child.close()
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
                _settle(future, error=self._dead)
                return future
            self.submitted += 1
        self._outbox.put((batch, future))
        return future

    def began(self, number: int) -> bool:
        """Whether the worker has begun its ``number``-th batch (read from shared memory)."""
        return began(self.spill) >= number

    def _write(self) -> None:
        while True:
            job = self._outbox.get()
            if job is None:
                try:
                    self.conn.send_bytes(b"")  # the worker's signal to stop
                except Exception:
                    pass
                return
            batch, future = job
            with self._lock:
                dead = self._dead
                if dead is None:  # before sending: the answer may come at once
                    self._sent.append((future, batch))
            if dead is not None:
                _settle(future, error=dead)
                continue
            try:
                self.conn.send(batch)
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                self._die()
                return
            except Exception as exc:  # the batch cannot be pickled: nothing was sent
                with self._lock:
                    if self._sent and self._sent[-1][0] is future:
                        self._sent.pop()
                error = UnpicklableError(
                    f"cannot send to a worker process, it cannot be pickled: {exc!r}; "
                    "pass picklable items and arguments, or use mode='thread'"
                )
                error.__cause__ = exc
                _settle(future, error=error)

    def _read(self) -> None:
        while True:
            try:
                results: Any = self.conn.recv()
            except (EOFError, OSError):
                self._die()
                return
            except Exception as exc:  # the results could not be unpickled here
                results = exc
            if type(results) is Part:
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
            if type(results) is Unreadable:
                _settle(future, error=unreadable_error(batch, results.reason))
            elif isinstance(results, Exception):
                _settle(future, error=unloadable_answer(batch, results))
            else:
                _settle(future, joined(parts, results) if parts else results)

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
        if waiting and loading(self.spill, running) and attempts_in(waiting[0][1]) > 1:
            # it died unpickling a batch of several: which one killed it is unknown, so
            # they run again one by one (a crash of one alone is its own attempt's)
            error: BaseException = WorkerCrashedError(
                f"the worker process died loading a batch (exit code {code})"
            )
        else:
            finished = finished_outcomes(parts, read_spill(self.spill, running))
            error = WorkerDied(code, finished=finished)
        for n, (future, _batch) in enumerate(waiting):  # the oldest one sent was running
            _settle(future, error=error if n == 0 else queued)
        while True:  # fail what the writer has not taken yet
            try:
                job = self._outbox.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _settle(job[1], error=queued)
        self._outbox.put(None)  # the writer ends (a sentinel drained above is put back)

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
        _OPEN.discard(self.conn)
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
