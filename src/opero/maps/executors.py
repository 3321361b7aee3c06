"""Attempts on an executor opero does not manage: any ``concurrent.futures.Executor``
(``executor=``) or a Dask cluster (``mode="dask"``, through ``Client.get_executor()``).

:class:`ExecutorHandle` opens what the map needs when the first attempt is dispatched (a
``LocalCluster``, a ``Client`` to ``address``, or nothing for a given executor or client) and
closes only what it opened: opero never shuts down an executor or a client it was given.
Opening and closing run on a helper thread so the caller's event loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Protocol

from opero.core.timeout import timeout_error
from opero.maps.attempts import run_remote
from opero.maps.jobs import JOB_MAX
from opero.maps.records import Function, Results, Segment
from opero.maps.targets import FunctionRef
from opero.maps.transport import BatchTransport

__all__ = [
    "ExecutorHandle",
    "ExecutorTransport",
    "dask_extra_missing",
    "executor_workers",
    "sendable",
]


def dask_extra_missing() -> str | None:
    """Why ``mode="dask"`` cannot work here, or None when it can."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return "operomap(mode='dask') needs Dask's distributed scheduler: pip install 'opero[dask]'"
    return None


def executor_workers(executor: Executor) -> int:
    """How many attempts ``executor`` runs at once (a guess for unknown executors)."""
    count = getattr(executor, "_max_workers", None)
    if isinstance(count, int) and count > 0:
        return count
    client = getattr(executor, "_client", None)
    if client is not None:
        try:
            return max(1, int(sum(client.nthreads().values())))
        except Exception:
            pass
    return os.cpu_count() or 1


class Closable(Protocol):
    """What a handle opened and closes (a Dask client or cluster)."""

    def close(self) -> object: ...


class Client(Closable, Protocol):
    """A Dask client, as a map uses it."""

    def get_executor(self, *, pure: bool) -> Executor: ...


class ExecutorHandle:
    """The executor of one map call, opened on first use."""

    def __init__(
        self,
        executor: Executor | None = None,
        client: Client | None = None,
        address: str | None = None,
        workers: int | None = None,
    ) -> None:
        self.given = executor
        self.client = client
        self.address = address
        self.workers = workers
        self.executor: Executor | None = executor
        self._owned: list[Closable] = []  # what this handle created and must close
        self._opening: asyncio.Future[Executor] | None = None

    @property
    def dask(self) -> bool:
        return self.given is None

    async def open(self) -> Executor:
        if self.executor is not None:
            return self.executor
        if self._opening is None:
            loop = asyncio.get_running_loop()
            self._opening = loop.create_future()
            try:
                executor = await asyncio.to_thread(self._open_dask)
            except BaseException as exc:
                self._opening.set_exception(exc)
                raise
            self.executor = executor
            self._opening.set_result(executor)
            return executor
        return await asyncio.shield(self._opening)

    def _open_dask(self) -> Executor:
        from distributed import Client, LocalCluster

        client = self.client
        if client is None:
            if self.address is not None:
                client = Client(self.address, set_as_default=False)  # type: ignore[no-untyped-call]
            else:
                cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=self.workers or min(4, os.cpu_count() or 1),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                )
                self._owned.append(cluster)
                client = Client(cluster, set_as_default=False)  # type: ignore[no-untyped-call]
            self._owned.insert(0, client)
        self.client = client
        executor: Executor = client.get_executor(pure=False)
        return executor

    def parallelism(self) -> int:
        if self.workers is not None:
            return self.workers
        if self.executor is not None:
            return executor_workers(self.executor)
        return 1

    async def close(self) -> None:
        owned, self._owned = self._owned, []
        if owned:
            await asyncio.to_thread(_close_all, owned)


def _close_all(things: list[Closable]) -> None:
    for thing in things:
        try:
            thing.close()
        except Exception:
            pass


def sendable(fn: Function, executor: Executor) -> FunctionRef | Function:
    """What to send to ``executor`` so its workers find ``fn``: the function itself for
    threads; for Dask (cloudpickle) also when it lives in ``__main__`` or a closure, which
    Dask workers could not import; otherwise a by-name reference (a module-level function
    whose module attribute is the map wrapper cannot be pickled by reference)."""
    if isinstance(executor, ThreadPoolExecutor) or not inspect.isfunction(fn):
        return fn  # threads share it; a bound method, partial or object travels whole
    name = getattr(fn, "__qualname__", "")
    importable = "<locals>" not in name and "<lambda>" not in name
    dask = type(executor).__module__.startswith("distributed")
    if dask and (not importable or getattr(fn, "__module__", "") == "__main__"):
        return fn
    return FunctionRef.of(fn) if importable else fn


class ExecutorTransport(BatchTransport):
    """A map's attempts on an executor opero does not manage (``executor=``, Dask). It is
    opened on the first attempt (so a map answered from the cache starts nothing), on a
    helper thread; what opero opened is closed when the map ends."""

    def __init__(
        self,
        fn: Function,
        handle: ExecutorHandle,
        workers: int,
        batch_max: int,
        *,
        name: str,
        timeout: float | None,
        paced: bool,
        held_back: Callable[[], float],
    ) -> None:
        super().__init__(
            name,
            workers,
            batch_max,
            depth=1 if (timeout is not None or paced) else 2,
            held_back=held_back,
            # a task's round trip through a foreign executor (a Dask scheduler) costs far
            # more than a pipe write: larger first jobs, until an attempt is measured
            unmeasured=JOB_MAX,
        )
        self.fn = fn
        self.handle = handle
        self.timeout = timeout
        self.executor: Executor | None = None
        self.target: FunctionRef | Function | None = None

    def start(self) -> None:
        asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        try:
            self.executor = await self.handle.open()
        except Exception as exc:
            self.broken = exc
            self.jobs.fail_all(exc)
            return
        self.workers = self.handle.parallelism()
        self.jobs.resize(self.workers)
        self.target = sendable(self.fn, self.executor)
        self.start_feeders()
        self.jobs.wake()

    async def run_batch(self, i: int, payload: list[Segment], size: int) -> Results | None:
        assert self.executor is not None and self.target is not None
        try:
            cf_future = self.executor.submit(run_remote, self.target, payload, os.getpid())
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

    async def close(self, *, abort: bool = False) -> None:
        try:
            await super().close(abort=abort)
        finally:
            await self.handle.close()
