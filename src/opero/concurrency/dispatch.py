"""The dispatcher: a queue of attempts in the caller, drained in batches by worker slots.

Each slot is a coroutine in the caller's event loop that takes a batch of ready attempts
(about ``len(queue) / workers``, at most ``batch_max``), has a worker thread or process run
it, and hands each outcome to the attempt's callback. Batching keeps the cost per attempt
low on tiny items; with a rate limit or few items ready, batches are naturally small.

A process slot whose worker dies re-runs that batch's attempts one by one ("solo", not
counted as attempts); a solo attempt whose worker dies fails with
:class:`~opero.errors.WorkerCrashedError`. The dead worker is replaced. With ``timeout``, a
process attempt that overruns has its worker killed and replaced.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from opero.concurrency.attempts import (
    Attempt,
    FunctionRef,
    Outcome,
    attach_remote_traceback,
)
from opero.concurrency.process import ProcessWorker, WorkerDied
from opero.concurrency.threads import ThreadWorkers
from opero.core.timeout import timeout_error

__all__ = ["Dispatcher"]

Callback = Callable[[Outcome], None]


class _Entry:
    __slots__ = ("args", "callback", "kwargs", "solo")

    def __init__(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], callback: Callback, solo: bool
    ) -> None:
        self.args = args
        self.kwargs = kwargs
        self.callback = callback
        self.solo = solo


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
    ) -> None:
        if kind not in ("thread", "process"):
            raise ValueError(f"unknown worker kind {kind!r}")
        self.fn = fn
        self.kind = kind
        self.workers = workers
        self.timeout = timeout
        # a process attempt under a timeout runs alone, so killing its worker hits only it
        self.batch_max = 1 if (timeout is not None and kind == "process") else batch_max
        self.name = name or getattr(fn, "__qualname__", repr(fn))
        self.queue: deque[_Entry] = deque()
        self._ready: asyncio.Event | None = None
        self._slots: list[asyncio.Task[None]] = []
        self._threads: ThreadPoolExecutor | None = None
        self._procs: list[ProcessWorker | None] = []
        self._pool: ThreadWorkers | None = None
        self._ref: FunctionRef | None = None
        self._closed = False
        self.started = False

    # ----- submitting ----------------------------------------------------------------------
    def submit(self, args: tuple[Any, ...], kwargs: dict[str, Any], callback: Callback) -> None:
        """Queue one attempt; ``callback(outcome)`` runs in the loop when it is done."""
        if not self.started:
            self._start()
        if self._pool is not None:
            self._pool.submit(callback, args, kwargs)
            return
        self.queue.append(_Entry(args, kwargs, callback, False))
        assert self._ready is not None
        self._ready.set()

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
        self._ready = asyncio.Event()
        if self.kind == "thread":
            self._pool = ThreadWorkers(
                self.fn, self.workers, _deliver, timeout=self.timeout, name=self.name
            )
            return
        self._ref = FunctionRef.of(self.fn)
        ctx = multiprocessing.get_context()
        # start every worker before any helper thread exists (fork-safety)
        self._procs = [ProcessWorker(ctx, self._ref, None) for _ in range(self.workers)]
        self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix=f"opero:{self.name}")
        self._slots = [
            asyncio.get_running_loop().create_task(self._slot(i)) for i in range(self.workers)
        ]

    def _take(self) -> list[_Entry]:
        queue = self.queue
        if queue[0].solo:
            return [queue.popleft()]
        n = min(self.batch_max, max(1, math.ceil(len(queue) / self.workers)))
        batch: list[_Entry] = []
        while queue and len(batch) < n and not queue[0].solo:
            batch.append(queue.popleft())
        return batch

    async def _slot(self, i: int) -> None:
        assert self._ready is not None
        ready = self._ready
        while not self._closed:
            if not self.queue:
                ready.clear()
                await ready.wait()
                continue
            batch = self._take()
            maybe = await self._run_process(i, batch)
            if maybe is None:
                continue  # re-queued as solo attempts
            outcomes = maybe
            for entry, outcome in zip(batch, outcomes, strict=True):
                if not outcome[0]:
                    attach_remote_traceback(outcome)
                entry.callback(outcome)

    async def _run_process(self, i: int, batch: list[_Entry]) -> list[Outcome] | None:
        loop = asyncio.get_running_loop()
        worker = self._procs[i]
        if worker is None:
            worker = self._procs[i] = self._new_worker()
        payload: list[Attempt] = [(e.args, e.kwargs) for e in batch]
        future = loop.run_in_executor(self._threads, worker.run_batch, payload)
        try:
            if self.timeout is None:
                return await future
            return await asyncio.wait_for(asyncio.shield(future), self.timeout + 0.05)
        except TimeoutError:
            future.add_done_callback(_ignore)
            self._replace(i)
            assert self.timeout is not None
            return [(False, timeout_error(self.name, self.timeout), None)]
        except WorkerDied as died:
            self._replace(i)
            if len(batch) == 1:
                return [(False, died.crash_error(self.name), None)]
            for entry in reversed(batch):  # innocent attempts re-run alone, uncounted
                entry.solo = True
                self.queue.appendleft(entry)
            assert self._ready is not None
            self._ready.set()
            return None
        except Exception as exc:  # the batch could not be sent (pickling)
            if len(batch) == 1:
                return [(False, exc, None)]
            for entry in reversed(batch):
                entry.solo = True
                self.queue.appendleft(entry)
            assert self._ready is not None
            self._ready.set()
            return None

    def _new_worker(self) -> ProcessWorker:
        assert self._ref is not None
        return ProcessWorker(multiprocessing.get_context(), self._ref, None)

    def _replace(self, i: int) -> None:
        old = self._procs[i]
        if old is not None:
            old.kill()
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
        if self._threads is not None:
            self._threads.shutdown(wait=not abort, cancel_futures=True)
            self._threads = None

    def pids(self) -> list[int]:
        """Process ids of the live workers (tests, diagnostics)."""
        return [w.pid for w in self._procs if w is not None and w.pid is not None]


def _deliver(done: list[tuple[Any, Outcome]]) -> None:
    for callback, outcome in done:
        if not outcome[0]:
            attach_remote_traceback(outcome)
        callback(outcome)


def _ignore(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
