"""The dispatcher: attempts queued in the caller, run by worker threads or processes.

Threads take one attempt at a time (:mod:`opero.concurrency.threads`). Processes are fed in
batches: each process slot is a coroutine in the caller's loop that takes the queued jobs
(a job is a list of attempts with one callback) up to about ``queued / workers`` attempts,
at most ``batch_max``, has its worker process run them, and hands each job its outcomes.
Batching keeps the cost per attempt low on tiny items; with a rate limit or few items
ready, batches are naturally small.

A process whose worker dies re-runs that batch's attempts one by one ("solo", not counted as
attempts); a solo attempt whose worker dies fails with
:class:`~opero.errors.WorkerCrashedError`. The dead worker is replaced. With ``timeout``, a
process attempt that overruns has its worker killed and replaced.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from typing import Any

from opero.concurrency.attempts import (
    FunctionRef,
    Outcome,
    Results,
    Segment,
    attach_remote_traceback,
    run_remote,
)
from opero.concurrency.executors import ExecutorHandle
from opero.concurrency.process import ProcessWorker, WorkerDied
from opero.concurrency.threads import ThreadWorkers
from opero.core.timeout import timeout_error
from opero.errors import OperoError

__all__ = ["BATCH_SECONDS", "PROBE", "Dispatcher", "JobCallback"]

BATCH_SECONDS = 0.025  #: target duration of one process batch, once attempts are measured
PROBE = 8  #: attempts in a batch before any has been measured
JOB_MAX = 256  #: attempts per job, at most

Callback = Callable[[Outcome], None]
Failures = dict[int, tuple[BaseException, str | None]]
JobCallback = Callable[[list[Any], Failures], None]


class _Job:
    """Attempts with one shared ``kwargs``; ``callback(values, failures)`` gets their results
    (positions local to the job)."""

    __slots__ = ("callback", "kwargs", "rows", "single", "solo")

    def __init__(
        self,
        rows: list[Any],
        kwargs: dict[str, Any],
        callback: JobCallback,
        solo: bool = False,
        single: bool = False,
    ) -> None:
        self.rows = rows  # positional arguments per attempt (the argument itself if single)
        self.kwargs = kwargs
        self.callback = callback
        self.solo = solo
        self.single = single


class _Single:
    """A job callback for one attempt, answering with an outcome."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callback) -> None:
        self.callback = callback

    def __call__(self, values: list[Any], failures: Failures) -> None:
        if failures:
            exc, tb = failures[0]
            self.callback((False, exc, tb))
        else:
            self.callback((True, values[0], None))


class _Gather:
    """Reassembles a job whose attempts re-run one by one."""

    __slots__ = ("failures", "job", "left", "values")

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.values: list[Any] = [None] * len(job.rows)
        self.failures: Failures = {}
        self.left = len(job.rows)

    def fill(self, i: int, values: list[Any], failures: Failures) -> None:
        if failures:
            self.failures[i] = failures[0]
        else:
            self.values[i] = values[0]
        self.left -= 1
        if self.left == 0:
            self.job.callback(self.values, self.failures)


class _Requeue:
    """The batch never ran: its worker died while it waited in the pipe."""


REQUEUE = _Requeue()


class Dispatcher:
    """Runs attempts of one function on ``workers`` threads or processes."""

    def __init__(
        self,
        fn: Callable[..., Any],
        kind: str,
        workers: int,
        *,
        timeout: float | None = None,
        batch_max: int = 256,
        name: str = "",
        handle: ExecutorHandle | None = None,
    ) -> None:
        if kind not in ("thread", "process", "executor"):
            raise ValueError(f"unknown worker kind {kind!r}")
        self.fn = fn
        self.kind = kind
        self.workers = workers
        self.timeout = timeout
        # a process attempt under a timeout runs alone, so killing its worker hits only it
        self.batch_max = 1 if (timeout is not None and kind != "thread") else batch_max
        self.handle = handle
        self._executor: Executor | None = None
        self._open_error: BaseException | None = None
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        self.queue: deque[_Job] = deque()
        self.queued = 0  # attempts in the queue
        self._ready: asyncio.Event | None = None
        self._slots: list[asyncio.Task[None]] = []
        self._procs: list[ProcessWorker | None] = []
        self._pool: ThreadWorkers | None = None
        self._ref: FunctionRef | None = None
        self._closed = False
        self.started = False
        #: measured seconds per attempt (moving average), to size batches
        self.per_attempt: float | None = None

    # ----- submitting ----------------------------------------------------------------------
    def submit_job(
        self,
        rows: list[Any],
        kwargs: dict[str, Any],
        callback: JobCallback,
        *,
        single: bool = False,
    ) -> None:
        """Queue attempts (process workers): ``rows`` of positional arguments, or with
        ``single`` the one argument of each; ``callback(values, failures)`` runs in the loop
        when all are done."""
        if not self.started:
            self._start()
        if self._open_error is not None:  # the executor could not be opened
            n = len(rows)
            values: list[Any] = [None] * n
            failures: Failures = dict.fromkeys(range(n), (self._open_error, None))
            asyncio.get_running_loop().call_soon(callback, values, failures)
            return
        self.queue.append(_Job(rows, kwargs, callback, single=single))
        self.queued += len(rows)
        assert self._ready is not None
        self._ready.set()

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], callback: Callback) -> None:
        """Queue one attempt; ``callback(outcome)`` runs in the loop when it is done."""
        if not self.started:
            self._start()
        if self._pool is not None:
            self._pool.submit(callback, args, kwargs)
            return
        self.submit_job([args], kwargs, _Single(callback))

    async def invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run one attempt on a worker and return its value or raise its exception."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def done(outcome: Outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        self.submit(args, kwargs, done)
        ok, value, _tb = await future
        if ok:
            return value
        raise value

    # ----- workers -------------------------------------------------------------------------
    def _start(self) -> None:
        self.started = True
        if self.kind == "thread":
            self._pool = ThreadWorkers(
                self.fn, self.workers, _deliver, timeout=self.timeout, name=self.name
            )
            return
        self._ready = asyncio.Event()
        if self.kind == "executor":
            asyncio.get_running_loop().create_task(self._open_executor())
            return
        self._ref = FunctionRef.of(self.fn)
        ctx = multiprocessing.get_context()
        # start every worker before any helper thread exists (fork-safety)
        self._procs = [ProcessWorker(ctx, self._ref) for _ in range(self.workers)]
        loop = asyncio.get_running_loop()
        # two batches outstanding per worker keep its pipe full (one, under a timeout, so the
        # clock of an attempt starts when its worker is free)
        depth = 1 if self.timeout is not None else 2
        self._slots = [
            loop.create_task(self._slot(i % self.workers)) for i in range(self.workers * depth)
        ]

    async def _open_executor(self) -> None:
        assert self.handle is not None
        try:
            self._executor = await self.handle.open()
        except Exception as exc:
            self._open_error = exc
            while self.queue:
                job = self.queue.popleft()
                n = len(job.rows)
                job.callback([None] * n, dict.fromkeys(range(n), (exc, None)))
            self.queued = 0
            return
        self.workers = self.handle.parallelism()
        self._target = _transport(self.fn, self._executor)
        depth = 1 if self.timeout is not None else 2
        loop = asyncio.get_running_loop()
        self._slots = [loop.create_task(self._slot(i)) for i in range(self.workers * depth)]
        assert self._ready is not None
        self._ready.set()

    def _take(self) -> list[_Job]:
        queue = self.queue
        first = queue.popleft()
        jobs = [first]
        count = len(first.rows)
        if not first.solo:
            n = self._batch_size()
            while queue and not queue[0].solo and count + len(queue[0].rows) <= n:
                job = queue.popleft()
                jobs.append(job)
                count += len(job.rows)
        self.queued -= count
        return jobs

    def _batch_size(self) -> int:
        """Attempts for the next batch: a fair share of the queue, small enough that a batch
        takes about BATCH_SECONDS (measured), never more than ``batch_max``."""
        n = min(self.batch_max, max(1, math.ceil(self.queued / self.workers)))
        per_attempt = self.per_attempt
        if per_attempt is None:
            return min(n, PROBE)  # nothing measured yet: a small first batch
        if per_attempt > 0:
            n = min(n, max(1, int(BATCH_SECONDS / per_attempt)))
        return n

    def job_size(self, ready: int) -> int:
        """How many of ``ready`` attempts a caller should put in one job: before anything
        is measured, enough jobs for every worker to get several; then about half a
        batch's worth (few for slow attempts, so they spread over workers)."""
        if self.batch_max == 1:
            return 1
        per_attempt = self.per_attempt
        if per_attempt is None:
            return max(PROBE, min(JOB_MAX, math.ceil(ready / (self.workers * 4))))
        if per_attempt <= 0:
            return JOB_MAX
        return max(1, min(JOB_MAX, int(BATCH_SECONDS / per_attempt / 2)))

    def _measure(self, seconds: float, attempts: int) -> None:
        sample = seconds / attempts
        old = self.per_attempt
        self.per_attempt = sample if old is None else (old + sample) / 2

    async def _slot(self, i: int) -> None:
        assert self._ready is not None
        ready = self._ready
        while not self._closed:
            if not self.queue:
                ready.clear()
                await ready.wait()
                continue
            jobs = self._take()
            payload: list[Segment] = [(job.rows, job.kwargs, job.single) for job in jobs]
            size = sum(len(job.rows) for job in jobs)
            loop = asyncio.get_running_loop()
            started = loop.time()
            results = await self._run(i, payload, size)
            self._measure(loop.time() - started, size)
            if results is REQUEUE:  # queued behind a batch that killed the worker: innocent
                self._requeue(jobs)
                continue
            if results is None:  # the worker died: every attempt re-runs alone
                self._requeue_solo(jobs)
                continue
            assert not isinstance(results, _Requeue)
            if len(results[0]) != size:  # never expected: fail the batch rather than hang
                error = OperoError(f"{self.name}: worker answered {len(results[0])} of {size}")
                results = [None] * size, dict.fromkeys(range(size), (error, None))
            values, failures = results
            for exc, tb in failures.values():
                attach_remote_traceback(exc, tb)
            if len(jobs) == 1:
                jobs[0].callback(values, failures)
                continue
            start = 0
            for job in jobs:
                end = start + len(job.rows)
                local = {p - start: f for p, f in failures.items() if start <= p < end}
                job.callback(values[start:end], local)
                start = end

    async def _run(self, i: int, payload: list[Segment], size: int) -> Results | _Requeue | None:
        """Results of ``payload`` on worker ``i``; None when a batch of several attempts must
        be re-run attempt by attempt."""
        if self.kind == "executor":
            return await self._run_executor(payload, size)
        worker = self._procs[i]
        if worker is None:
            worker = self._procs[i] = self._new_worker()
        future = asyncio.wrap_future(worker.submit(payload))
        try:
            if self.timeout is None:
                return await future
            return await asyncio.wait_for(asyncio.shield(future), self.timeout + 0.05)
        except TimeoutError:
            future.add_done_callback(_ignore)
            self._replace(i, worker)
            assert self.timeout is not None
            return [None], {0: (timeout_error(self.name, self.timeout), None)}
        except WorkerDied as died:
            self._replace(i, worker)
            if not died.running:
                return REQUEUE
            if size == 1:
                return [None], {0: (died.crash_error(self.name), None)}
            return None
        except Exception as exc:  # the batch could not be sent or read back (pickling)
            if size == 1:
                return [None], {0: (exc, None)}
            return None

    async def _run_executor(self, payload: list[Segment], size: int) -> Results | None:
        assert self._executor is not None
        try:
            cf_future = self._executor.submit(run_remote, self._target, payload, None, os.getpid())
        except Exception as exc:  # the executor is shut down or broken
            return [None] * size, dict.fromkeys(range(size), (exc, None))
        future = asyncio.wrap_future(cf_future)
        try:
            if self.timeout is None:
                return await future
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            cf_future.cancel()
            assert self.timeout is not None
            return [None], {0: (timeout_error(self.name, self.timeout), None)}
        except Exception as exc:  # a lost worker, a broken pool, an unpicklable batch
            if size == 1:
                return [None], {0: (exc, None)}
            return None  # re-run attempt by attempt: only the culprit fails

    def _requeue(self, jobs: list[_Job]) -> None:
        for job in reversed(jobs):
            self.queue.appendleft(job)
            self.queued += len(job.rows)
        assert self._ready is not None
        self._ready.set()

    def _requeue_solo(self, jobs: list[_Job]) -> None:
        solos: list[_Job] = []
        for job in jobs:
            gather = _Gather(job)
            for n, row in enumerate(job.rows):
                solos.append(
                    _Job([row], job.kwargs, partial(gather.fill, n), solo=True, single=job.single)
                )
        for job in reversed(solos):
            self.queue.appendleft(job)
        self.queued += len(solos)
        assert self._ready is not None
        self._ready.set()

    def _new_worker(self) -> ProcessWorker:
        assert self._ref is not None
        return ProcessWorker(multiprocessing.get_context(), self._ref)

    def _replace(self, i: int, dead: ProcessWorker) -> None:
        """Kill ``dead`` and put a new worker in its place (once, whichever slot asks)."""
        dead.kill()
        if self._procs and self._procs[i] is dead:
            self._procs[i] = None if self._closed else self._new_worker()

    # ----- shutting down -------------------------------------------------------------------
    async def close(self, *, abort: bool = False) -> None:
        """Stop the slots and the workers; ``abort`` kills processes at once."""
        self._closed = True
        for task in self._slots:
            task.cancel()
        if self._slots:
            await asyncio.gather(*self._slots, return_exceptions=True)
        self.shutdown(abort=abort)

    def shutdown(self, *, abort: bool = False) -> None:
        """Synchronous part of :meth:`close`; safe to call twice."""
        self._closed = True
        if self._pool is not None:
            self._pool.stop(abort=abort)
            self._pool = None
        procs, self._procs = self._procs, []
        for worker in procs:
            if worker is None:
                continue
            if abort:
                worker.kill()
            else:
                worker.stop()

    def pids(self) -> list[int]:
        """Process ids of the live workers (tests, diagnostics)."""
        return [w.pid for w in self._procs if w is not None and w.pid is not None]


def _transport(fn: Callable[..., Any], executor: Executor) -> Any:
    """What to send to ``executor`` so its workers find ``fn``: the function itself for
    threads; for Dask (cloudpickle) also when it lives in ``__main__`` or a closure, which
    Dask workers could not import; otherwise a by-name reference (a module-level function
    whose module attribute is the map wrapper cannot be pickled by reference)."""
    if isinstance(executor, ThreadPoolExecutor):
        return fn
    name = getattr(fn, "__qualname__", "")
    importable = "<locals>" not in name and "<lambda>" not in name
    dask = type(executor).__module__.startswith("distributed")
    if dask and (not importable or getattr(fn, "__module__", "") == "__main__"):
        return fn
    return FunctionRef.of(fn) if importable else fn


def _deliver(done: list[tuple[Any, Outcome]]) -> None:
    for callback, outcome in done:
        if not outcome[0]:
            attach_remote_traceback(outcome[1], outcome[2])
        callback(outcome)


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
