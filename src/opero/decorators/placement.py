"""Where a map's attempts run (threads, processes, worker coroutines, an executor or Dask)
and how many run at once, decided once at decoration from the options."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opero.maps.executors import ExecutorHandle
    from opero.maps.targets import ByValue, FunctionRef
    from opero.options import OperomapOptions

__all__ = ["Placement", "Size", "placement", "size_of"]

PROCESS_BATCH = 1024  #: attempts sent to a worker process at once, at most
THREAD_BATCH = 16
ASYNC_WORKERS = 100


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a map's attempts run: ``where`` (the transport's mode), how an executor is
    obtained (executor and Dask maps) and what a worker process runs (process maps)."""

    where: str
    handle_factory: Callable[[], ExecutorHandle] | None = None
    target: FunctionRef | ByValue | None = None


@dataclass(frozen=True, slots=True)
class Size:
    """How many workers, attempts sent to one at once, and items held in flight."""

    workers: int
    batch: int
    bound: int


def placement(
    fn: Callable[..., Any], name: str, options: OperomapOptions, is_async: bool
) -> Placement:
    """Where the attempts of ``fn`` run, refusing at decoration what cannot run there."""
    mode, executor = options["mode"], options["executor"]
    if executor is not None or mode == "dask":
        if isinstance(executor, ProcessPoolExecutor) and ("<locals>" in name or "<lambda>" in name):
            raise TypeError(
                f"a ProcessPoolExecutor cannot load {name!r} in its workers: define it at "
                "module level, or use a ThreadPoolExecutor or mode='thread'"
            )
        from opero.maps.executors import ExecutorHandle

        workers, client, address = options["workers"], options["client"], options["address"]

        def handle_factory() -> ExecutorHandle:
            return ExecutorHandle(
                executor=executor, client=client, address=address, workers=workers
            )

        return Placement("executor", handle_factory=handle_factory)
    if mode in ("process", "process_async"):
        from opero.maps.attempts import process_target

        try:
            target = process_target(fn)  # refused here, before any item runs
        except TypeError as exc:
            raise TypeError(f"operomap(mode={mode!r}): {exc}") from exc.__cause__
        return Placement("process", target=target)
    return Placement("async" if mode == "async" and is_async else "thread")


def size_of(where: str, workers: int | None, executor: Executor | None) -> Size:
    if where == "executor":
        n = workers or (executor_parallelism(executor) if executor is not None else 8)
        return Size(n, PROCESS_BATCH, n * PROCESS_BATCH * 2)
    n = workers if workers is not None else default_workers(where)
    if where == "process":
        return Size(n, PROCESS_BATCH, n * PROCESS_BATCH * 2)
    if where == "thread":
        return Size(n, THREAD_BATCH, n * 4)
    return Size(n, 1, n * 4)  # worker coroutines; items queued for them count toward the bound


def default_workers(mode: str) -> int:
    cpus = os.cpu_count() or 1
    if mode == "process":
        return cpus
    if mode == "async":
        return ASYNC_WORKERS
    return min(32, cpus + 4)


def executor_parallelism(executor: Executor) -> int:
    from opero.maps.executors import executor_workers

    return executor_workers(executor)
