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
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from opero.concurrency.attempts import (
    ByValue,
    FunctionRef,
    Outcome,
    Results,
    Segment,
    attach_remote_traceback,
    process_target,
    run_remote,
)
from opero.concurrency.executors import ExecutorHandle, transport
from opero.concurrency.jobs import REQUEUE, Failures, Job, JobCallback, JobQueue, Requeue, Single
from opero.concurrency.process import ProcessWorker, WorkerDied
from opero.concurrency.threads import ThreadWorkers
from opero.core.clock import CLOCK
from opero.core.pauses import Pauses
from opero.core.timeout import timeout_error
from opero.errors import OperoError

__all__ = ["Dispatcher"]

#: seconds a fresh worker may take to begin a batch before its attempt's clock runs anyway
STARTUP_PATIENCE = 60.0

Callback = Callable[[Outcome], None]


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
        target: FunctionRef | ByValue | None = None,
        paced: bool = False,
        pauses: Pauses | None = None,
        early_pause: bool = False,
    ) -> None:
        if kind not in ("thread", "process", "executor"):
            raise ValueError(f"unknown worker kind {kind!r}")
        self.fn = fn
        self.kind = kind
        self.workers = workers
        self.timeout = timeout
        #: one batch per worker at a time (rate-limited maps, timeouts): an attempt is sent
        #: only when its worker is free, so its start is its send
        self.depth = 1 if (timeout is not None or paced) else 2
        # a process attempt under a timeout runs alone, so killing its worker hits only it
        batch_max = 1 if (timeout is not None and kind != "thread") else batch_max
        self.jobs = JobQueue(workers, batch_max)
        self.handle = handle
        self._executor: Executor | None = None
        self._open_error: BaseException | None = None
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        self._slots: list[asyncio.Task[None]] = []
        self._procs: list[ProcessWorker | None] = []
        self._pool: ThreadWorkers | None = None
        self._ref: FunctionRef | ByValue | None = target
        self._closed = False
        self.started = False
        #: the function's shared pauses: no attempt is sent while one runs
        self.pauses = pauses
        self._paused_until = 0.0  # time.time() before which process workers hold back
        self.early_pause = early_pause
        #: attempts the map has in flight (set by the map): how many workers may start
        self.in_flight = 0

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
        self.jobs.put(Job(rows, kwargs, callback, single=single))

    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], callback: Callback) -> None:
        """Queue one attempt; ``callback(outcome)`` runs in the loop when it is done."""
        if not self.started:
            self._start()
        if self._pool is not None:
            self._pool.submit(callback, args, kwargs)
            return
        self.submit_job([args], kwargs, Single(callback))

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

    def spans(self, ready: int) -> list[tuple[int, int]]:
        """How a caller should cut ``ready`` attempts into jobs (see ``JobQueue.spans``)."""
        return self.jobs.spans(ready)

    # ----- workers -------------------------------------------------------------------------
    def _start(self) -> None:
        self.started = True
        if self.kind == "thread":
            self._pool = ThreadWorkers(
                self.fn,
                self.workers,
                _deliver,
                timeout=self.timeout,
                name=self.name,
                pauses=self.pauses,
                early_pause=self.early_pause,
            )
            return
        self.jobs.ready = asyncio.Event()
        if self.kind == "executor":
            asyncio.get_running_loop().create_task(self._open_executor())
            return
        if self._ref is None:
            self._ref = process_target(self.fn)
        # workers start lazily, when their slot first has a job (see _spawn)
        self._procs = [None] * self.workers
        if self.pauses is not None:
            self.pauses.listeners.append(self._pause_workers)
        loop = asyncio.get_running_loop()
        # two batches outstanding per worker keep its pipe full (one, under a timeout, so the
        # clock of an attempt starts when its worker is free)
        depth = self.depth
        self._slots = [
            loop.create_task(self._slot(i % self.workers)) for i in range(self.workers * depth)
        ]

    async def _open_executor(self) -> None:
        assert self.handle is not None
        try:
            self._executor = await self.handle.open()
        except Exception as exc:
            self._open_error = exc
            self.jobs.fail_all(exc)
            return
        self.workers = self.jobs.workers = self.handle.parallelism()
        self._target = transport(self.fn, self._executor)
        depth = self.depth
        loop = asyncio.get_running_loop()
        self._slots = [loop.create_task(self._slot(i)) for i in range(self.workers * depth)]
        assert self.jobs.ready is not None
        self.jobs.ready.set()

    async def _slot(self, i: int) -> None:
        queue = self.jobs
        assert queue.ready is not None
        ready = queue.ready
        while not self._closed:
            if not queue.jobs:
                ready.clear()
                await ready.wait()
                continue
            pauses = self.pauses
            if pauses is not None and pauses.active and not CLOCK.zero_waits:
                wait = pauses.remaining(None)
                if wait > 0:  # a server asked every caller to wait
                    pauses.counters.waited(wait)
                    await CLOCK.async_sleep(wait)
                    continue
            jobs = queue.take()
            payload: list[Segment] = [(job.rows, job.kwargs, job.single) for job in jobs]
            size = sum(len(job.rows) for job in jobs)
            loop = asyncio.get_running_loop()
            started = loop.time()
            results = await self._run(i, payload, size)
            queue.measure(loop.time() - started, size)
            if results is REQUEUE:  # queued behind a batch that killed the worker: innocent
                queue.requeue(jobs)
                continue
            if results is None:  # a foreign pool failed the batch: every attempt re-runs alone
                queue.requeue_solo(jobs)
                continue
            if isinstance(results, WorkerDied):  # finished attempts stay done (exact)
                assert results.finished is not None
                for ok, exc, tb in results.finished[0].values():
                    if not ok:
                        attach_remote_traceback(exc, tb)
                queue.requeue_after_crash(jobs, *results.finished, results.crash_error(self.name))
                continue
            assert not isinstance(results, Requeue)
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

    async def _run(
        self, i: int, payload: list[Segment], size: int
    ) -> Results | Requeue | WorkerDied | None:
        """Results of ``payload`` on worker ``i``; None when a batch of several attempts must
        be re-run attempt by attempt."""
        if self.kind == "executor":
            return await self._run_executor(payload, size)
        worker = self._procs[i]
        if worker is None:
            worker = self._spawn(i)
        future = asyncio.wrap_future(worker.submit(payload))
        try:
            if self.timeout is None:
                return await future
            # the clock starts when the worker takes the attempt (not while a fresh worker
            # starts up or the batch travels): wait until it began this batch
            number = worker.submitted
            patience = time.monotonic() + STARTUP_PATIENCE
            while not worker.began(number) and not future.done():
                if time.monotonic() > patience:  # a worker that never gets going: time it
                    break
                await asyncio.sleep(0.002)
            return await asyncio.wait_for(asyncio.shield(future), self.timeout + 0.05)
        except TimeoutError:
            future.add_done_callback(_ignore)
            self._replace(i, worker)
            assert self.timeout is not None
            return [None], {0: (timeout_error(self.name, self.timeout), None)}
        except WorkerDied as died:
            self._replace(i, worker)
            if not died.running or died.finished is None:
                return REQUEUE  # it never began this batch
            if size == 1:
                return [None], {0: (died.crash_error(self.name), None)}
            return died
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

    def _spawn(self, i: int) -> ProcessWorker:
        """Start worker ``i`` and, with it, a worker for each job queued now that no
        running worker will take (never more workers than attempts waiting). The processes
        are forked together, before any of their helper threads start."""
        assert self._ref is not None
        ctx = multiprocessing.get_context()
        procs = self._procs
        idle = [n for n, w in enumerate(procs) if w is None and n != i]
        live = len(procs) - len(idle) - 1
        more = max(len(self.jobs.jobs), self.in_flight - live - 1)
        wanted = [i, *idle[:more]]
        fresh: list[ProcessWorker] = []
        try:
            for n in wanted:
                worker = ProcessWorker(ctx, self._ref, start_io=False)
                if self._paused_until > time.time():
                    worker.pause_until(self._paused_until)
                procs[n] = worker
                fresh.append(worker)
        finally:
            for worker in fresh:
                worker.start_io()
        started = procs[i]
        assert started is not None
        return started

    def _replace(self, i: int, dead: ProcessWorker) -> None:
        """Kill ``dead``; its slot starts a new worker when it next has a job."""
        dead.kill()
        if self._procs and self._procs[i] is dead:
            self._procs[i] = None

    def _pause_workers(self, key: object, seconds: float) -> None:
        """A pause of the function (not of one fallback value): every worker holds back."""
        if key is not None or CLOCK.zero_waits:
            return
        until = time.time() + seconds
        self._paused_until = max(self._paused_until, until)
        for worker in list(self._procs):
            if worker is not None:
                worker.pause_until(until)

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
        if self.pauses is not None and self._pause_workers in self.pauses.listeners:
            self.pauses.listeners.remove(self._pause_workers)
        if self._pool is not None:
            self._pool.stop(abort=abort)
            self._pool = None
        procs, self._procs = self._procs, []
        live = [worker for worker in procs if worker is not None]
        if not abort:
            for worker in live:
                worker.ask_to_stop()  # all exit at once; then each is waited for
        for worker in live:
            if abort:
                worker.kill()
            else:
                worker.stop()

    def pids(self) -> list[int]:
        """Process ids of the live workers (tests, diagnostics)."""
        return [w.pid for w in self._procs if w is not None and w.pid is not None]


def _deliver(done: list[tuple[Any, Outcome]]) -> None:
    for callback, outcome in done:
        if not outcome[0]:
            attach_remote_traceback(outcome[1], outcome[2])
        callback(outcome)


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
