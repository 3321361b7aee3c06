"""Where a map's attempts run: one transport per ``mode``, all behind one small protocol —
"run these attempts, give back one outcome per attempt". A transport never judges: the
outcomes go back to the caller's loop, where the judge settles them.

- :class:`~opero.maps.threads.ThreadTransport`: worker threads, one attempt at a time;
- :class:`~opero.maps.processes.ProcessTransport`: worker processes fed in batches;
- :class:`~opero.maps.executors.ExecutorTransport`: a given executor or a Dask cluster.
(``mode="async"`` needs none: its attempts are awaited on the caller's loop.)

:class:`BatchTransport` is what the process and executor transports share: attempts queued
as jobs (:mod:`opero.maps.jobs`) and taken in batches by feeder coroutines, a
feeder per worker (two with room in the pipe), each handing its batch to :meth:`run_batch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

from opero.core.clock import CLOCK
from opero.errors import OperoError
from opero.maps.attempts import attach_remote_traceback
from opero.maps.job_queue import JobQueue
from opero.maps.jobs import (
    REQUEUE,
    UNMEASURED_JOB,
    Failures,
    Job,
    JobCallback,
    OneOutcome,
    Requeue,
)
from opero.maps.records import Args, Kwargs, Outcome, Results, Rows, Segment

if TYPE_CHECKING:
    from opero.maps.spill import Finished

__all__ = ["BatchTransport", "Callback", "Crashed", "Transport"]

Callback = Callable[[Outcome], None]


class Crashed(Protocol):
    """A batch whose worker died part-way: what it finished, and the error of the rest."""

    finished: Finished | None

    def crash_error(self, name: str) -> BaseException: ...


class Running(NamedTuple):
    """The batch a feeder has out: the worker running it, and its jobs."""

    worker: int
    jobs: list[Job]


class Transport(Protocol):
    """Runs attempts of one function for one map call."""

    def submit(self, args: Args, kwargs: Kwargs, callback: Callback) -> None:
        """Run one attempt; ``callback(outcome)`` runs in the caller's loop."""

    def submit_job(
        self,
        rows: Rows,
        kwargs: Kwargs,
        callback: JobCallback,
        *,
        bare: bool,
        fresh: bool = False,
    ) -> None:
        """Run several attempts; ``callback(values, failures)`` runs once all are done.
        ``fresh``: the first attempts of items fed in bulk (see :meth:`withdraw`)."""

    def withdraw(self, marker: BaseException) -> None:
        """The map stopped: fresh jobs not yet handed to a worker answer at once, every
        attempt failed with ``marker``, without running."""

    def spans(self, ready: int) -> list[tuple[int, int]]:
        """How to cut ``ready`` attempts into jobs."""
        ...

    def set_in_flight(self, count: int) -> None:
        """The map has ``count`` items in flight (how many workers may be worth starting)."""

    async def invoke(self, args: Args, kwargs: Kwargs) -> object:
        """Run one attempt and return its value or raise its exception."""

    async def close(self, *, abort: bool) -> None:
        """Stop every worker (``abort``: at once, dropping what is queued)."""

    def shutdown(self, *, abort: bool) -> None:
        """The synchronous part of :meth:`close` (safe to call twice)."""


class BatchTransport:
    """Jobs queued in the caller, taken in batches by one feeder per worker."""

    def __init__(
        self,
        name: str,
        workers: int,
        batch_max: int,
        *,
        depth: int,
        held_back: Callable[[], float],
        unmeasured: int = UNMEASURED_JOB,
    ) -> None:
        self.name = name
        self.workers = workers
        self.jobs = JobQueue(workers, batch_max, unmeasured)
        #: batches outstanding per worker: 2 keep its pipe full; 1 when an attempt's
        #: start must be its send (rate limits, timeouts)
        self.depth = depth
        self.held_back = held_back
        self.started = False
        self.closed = False
        self.feeders: list[asyncio.Task[None]] = []
        #: the batch each feeder has out: its worker and jobs
        self.running: dict[int, Running] = {}
        #: why no attempt can run (the executor could not be opened), or None
        self.broken: BaseException | None = None

    # ----- submitting ------------------------------------------------------------------------
    def submit(self, args: Args, kwargs: Kwargs, callback: Callback) -> None:
        self.submit_job([args], kwargs, OneOutcome(callback))

    def submit_job(
        self,
        rows: Rows,
        kwargs: Kwargs,
        callback: JobCallback,
        *,
        bare: bool = False,
        fresh: bool = False,
    ) -> None:
        self._put(Job(rows, kwargs, callback, bare=bare, fresh=fresh))

    def _put(self, job: Job) -> None:
        if not self.started:
            self.started = True
            self.start()
        if self.broken is not None:
            n = len(job.rows)
            failures: Failures = dict.fromkeys(range(n), (self.broken, None))
            values: list[object] = [None] * n
            asyncio.get_running_loop().call_soon(job.callback, values, failures)
            return
        self.jobs.put(job)

    def withdraw(self, marker: BaseException) -> None:
        self.jobs.withdraw(marker)

    async def invoke(self, args: Args, kwargs: Kwargs) -> object:
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()

        def done(outcome: Outcome) -> None:
            if not future.done():
                future.set_result(outcome)

        job = Job([args], kwargs, OneOutcome(done))
        self._put(job)
        try:
            outcome = await future
        except asyncio.CancelledError:  # its caller gave it up (cut at its deadline)
            if not self.jobs.remove(job):  # queued: dropped; else its worker is cut
                self._cut_running(job)
            raise
        return outcome.result()

    def _cut_running(self, job: Job) -> None:
        """``job`` was given up while a worker runs it: that worker is cut."""
        for i, jobs in list(self.running.values()):
            if any(j is job for j in jobs):
                self.cut(i)

    def spans(self, ready: int) -> list[tuple[int, int]]:
        return self.jobs.spans(ready)

    def set_in_flight(self, count: int) -> None:
        self.in_flight = count

    in_flight = 0

    # ----- what a kind of worker provides ---------------------------------------------------
    def start(self) -> None:
        """Called with the first job: start the feeders (see :meth:`start_feeders`)."""
        raise NotImplementedError

    async def run_batch(
        self, i: int, payload: list[Segment], size: int
    ) -> Results | Requeue | Crashed | None:
        """The results of ``payload`` on worker ``i``: ``REQUEUE`` when it never ran, a
        :class:`Crashed` when its worker died part-way, None when each attempt must re-run
        alone (a foreign pool failed the whole batch)."""
        raise NotImplementedError

    def cut(self, i: int) -> None:
        """An attempt running on worker ``i`` was given up by its caller (one runs alone
        there when attempts may be cut): stop it if this kind of worker can."""

    def start_feeders(self) -> None:
        loop = asyncio.get_running_loop()
        count = self.workers * self.depth
        self.feeders = [loop.create_task(self._feed(n % self.workers, n)) for n in range(count)]

    # ----- feeding ---------------------------------------------------------------------------
    async def _feed(self, i: int, n: int) -> None:
        queue = self.jobs
        ready = queue.ready
        loop = asyncio.get_running_loop()
        while not self.closed:
            if not queue.jobs:
                ready.clear()
                await ready.wait()
                continue
            wait = self.held_back()
            if wait > 0:  # a server asked every caller to wait
                await CLOCK.async_sleep(wait)
                continue
            jobs = queue.take()
            payload: list[Segment] = [(job.rows, job.kwargs, job.bare) for job in jobs]
            size = sum(len(job.rows) for job in jobs)
            started = loop.time()
            self.running[n] = Running(i, jobs)
            try:
                results = await self.run_batch(i, payload, size)
            finally:
                del self.running[n]
            queue.measure(loop.time() - started, size)
            self._hand_back(jobs, size, results)

    def _hand_back(
        self, jobs: list[Job], size: int, results: Results | Requeue | Crashed | None
    ) -> None:
        queue = self.jobs
        if results is REQUEUE:  # queued behind a batch that killed the worker: innocent
            queue.requeue(jobs)
        elif results is None:  # a foreign pool failed the batch: every attempt re-runs alone
            queue.requeue_solo(jobs)
        elif isinstance(results, tuple):
            self._answer(jobs, *self._checked(results, size))
        else:  # its worker died: finished attempts stay done
            assert not isinstance(results, Requeue)
            self._crashed(jobs, results)

    def _crashed(self, jobs: list[Job], crashed: Crashed) -> None:
        """Finished attempts keep their outcomes; the rest fail or go back to the queue."""
        assert crashed.finished is not None
        finished, all_started = crashed.finished
        for outcome in finished.values():
            if not outcome.ok:
                attach_remote_traceback(outcome.error, outcome.tb)
        self.jobs.requeue_after_crash(jobs, finished, all_started, crashed.crash_error(self.name))

    def _checked(self, results: Results, size: int) -> Results:
        """``results`` with their worker tracebacks attached (one answer per attempt)."""
        if len(results[0]) != size:  # never expected: fail the batch rather than hang
            error = OperoError(f"{self.name}: worker answered {len(results[0])} of {size}")
            results = [None] * size, dict.fromkeys(range(size), (error, None))
        for exc, tb in results[1].values():
            attach_remote_traceback(exc, tb)
        return results

    @staticmethod
    def _answer(jobs: list[Job], values: list[object], failures: Failures) -> None:
        """Each job of a batch gets its part of the answer."""
        if len(jobs) == 1:
            jobs[0].callback(values, failures)
            return
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            local = {p - start: f for p, f in failures.items() if start <= p < end}
            job.callback(values[start:end], local)
            start = end

    # ----- closing ---------------------------------------------------------------------------
    async def close(self, *, abort: bool = False) -> None:
        self.closed = True
        for task in self.feeders:
            task.cancel()
        try:
            if self.feeders:
                await asyncio.gather(*self.feeders, return_exceptions=True)
        finally:  # also when this close is itself cancelled: no worker outlives the map
            self.shutdown(abort=abort)

    def shutdown(self, *, abort: bool = False) -> None:
        self.closed = True
