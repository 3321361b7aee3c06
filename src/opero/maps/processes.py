"""The process transport: a map's attempts on worker processes of its own.

Each worker is a :class:`~opero.maps.process.ProcessWorker` with its own pipe, fed
batches by a feeder coroutine in the caller's loop. Workers start lazily: a worker starts
when its feeder first has a job, together with one worker per other job waiting or item in
flight, forked before any of their helper threads start. A worker that dies is replaced;
what it had finished stays done (see :mod:`opero.maps.spill`). With ``timeout``, a
batch holds one attempt, its clock starts when the worker begins it, and a worker that
overruns is killed and replaced; so is a worker whose attempt its caller gave up (cut at
the call's deadline: with deadlines, too, a batch holds one attempt). A pause of the
function holds every worker back.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable, Hashable

from opero.core.clock import CLOCK
from opero.core.pauses import Pauses
from opero.core.timeout import timeout_error
from opero.maps.jobs import REQUEUE, Requeue
from opero.maps.process import ProcessWorker, WorkerDied
from opero.maps.records import Results, Segment
from opero.maps.targets import ByValue, FunctionRef
from opero.maps.transport import BatchTransport

__all__ = ["ProcessTransport"]

#: seconds a fresh worker may take to begin a batch before its attempt's clock runs anyway
STARTUP_PATIENCE = 60.0


class ProcessTransport(BatchTransport):
    """Attempts of one function on ``workers`` worker processes."""

    def __init__(
        self,
        target: FunctionRef | ByValue,
        workers: int,
        batch_max: int,
        *,
        name: str,
        timeout: float | None,
        paced: bool,
        pauses: Pauses,
        held_back: Callable[[], float],
        alone: bool = False,
    ) -> None:
        # a process attempt under a timeout (or a deadline: ``alone``) runs alone, so killing
        # its worker hits only it
        alone = alone or timeout is not None
        super().__init__(
            name,
            workers,
            1 if alone else batch_max,
            depth=1 if (alone or paced) else 2,
            held_back=held_back,
        )
        self.target = target
        self.timeout = timeout
        self.pauses = pauses
        self.procs: list[ProcessWorker | None] = []
        self.paused_until = 0.0  # time.time() before which new workers hold back

    def start(self) -> None:
        self.procs = [None] * self.workers  # started lazily, when their feeder has a job
        self.pauses.listeners.append(self._pause_workers)
        self.start_feeders()

    async def run_batch(
        self, i: int, payload: list[Segment], size: int
    ) -> Results | Requeue | WorkerDied | None:
        worker = self.procs[i]
        if worker is None:
            worker = self._spawn(i)
        future = asyncio.wrap_future(worker.submit(payload))
        try:
            if self.timeout is None:
                return await future
            return await self._timed(worker, future, self.timeout)
        except TimeoutError:
            future.add_done_callback(_ignore)
            self._replace(i, worker)
            assert self.timeout is not None
            return [None], {0: (timeout_error(self.name, self.timeout), None)}
        except WorkerDied as died:
            self._replace(i, worker)
            return _after_death(died, size, self.name)
        except Exception as exc:  # the batch could not be sent or read back (pickling)
            return _one_failed(exc) if size == 1 else None

    @staticmethod
    async def _timed(
        worker: ProcessWorker, future: asyncio.Future[Results], timeout: float
    ) -> Results:
        """The results of ``future`` within ``timeout``, its clock started when the worker
        takes the attempt (not while a fresh worker starts up or the batch travels)."""
        number = worker.submitted
        patience = time.monotonic() + STARTUP_PATIENCE
        while not worker.began(number) and not future.done():
            if time.monotonic() > patience:  # a worker that never gets going: time it
                break
            await asyncio.sleep(0.002)
        return await asyncio.wait_for(asyncio.shield(future), timeout + 0.05)

    def _spawn(self, i: int) -> ProcessWorker:
        """Start worker ``i`` and, with it, a worker for each job queued now that no
        running worker will take (never more workers than attempts waiting). The processes
        are forked together, before any of their helper threads start."""
        ctx = multiprocessing.get_context()
        procs = self.procs
        idle = [n for n, w in enumerate(procs) if w is None and n != i]
        live = len(procs) - len(idle) - 1
        more = max(len(self.jobs.jobs), self.in_flight - live - 1)
        fresh: list[ProcessWorker] = []
        try:
            for n in [i, *idle[:more]]:
                worker = ProcessWorker(ctx, self.target, start_io=False)
                if self.paused_until > time.time():
                    worker.pause_until(self.paused_until)
                procs[n] = worker
                fresh.append(worker)
        finally:
            for worker in fresh:
                worker.start_io()
        started = procs[i]
        assert started is not None
        return started

    def cut(self, i: int) -> None:
        worker = self.procs[i] if i < len(self.procs) else None
        if worker is not None:
            self._replace(i, worker)  # its batch fails as a crash, which nobody awaits

    def _replace(self, i: int, dead: ProcessWorker) -> None:
        """Kill ``dead``; its feeder starts a new worker when it next has a job."""
        dead.kill()
        if self.procs and self.procs[i] is dead:
            self.procs[i] = None

    def _pause_workers(self, key: Hashable, seconds: float) -> None:
        """A pause of the function (not of one fallback value): every worker holds back."""
        if key is not None or CLOCK.zero_waits:
            return
        until = time.time() + seconds
        self.paused_until = max(self.paused_until, until)
        for worker in list(self.procs):
            if worker is not None:
                worker.pause_until(until)

    def shutdown(self, *, abort: bool = False) -> None:
        self.closed = True
        if self._pause_workers in self.pauses.listeners:
            self.pauses.listeners.remove(self._pause_workers)
        procs, self.procs = self.procs, []
        live = [worker for worker in procs if worker is not None]
        if not abort:
            for worker in live:
                worker.ask_to_stop()  # all exit at once; then each is waited for
        for worker in live:
            if abort:
                worker.kill()
            else:
                worker.stop()


def _after_death(died: WorkerDied, size: int, name: str) -> Results | Requeue | WorkerDied:
    """What a batch whose worker died answers: ``REQUEUE`` if it never began, a crash of
    its one attempt, or the outcomes it finished."""
    if not died.running or died.finished is None:
        return REQUEUE  # it never began this batch
    if size == 1:
        return _one_failed(died.crash_error(name))
    return died


def _one_failed(exc: BaseException) -> Results:
    return [None], {0: (exc, None)}


def _ignore(future: asyncio.Future[Results]) -> None:
    if not future.cancelled():
        future.exception()
