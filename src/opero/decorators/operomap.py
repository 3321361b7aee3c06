"""``@operomap``: the ``@opero`` pipeline over many inputs, in threads, processes or tasks.

The decorated callable takes an iterable; each item is passed as the first positional
argument, extra arguments go to every call. Cache and rate limit live in the caller and are
global; workers only run attempts (see :mod:`opero.core.map_driver`).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import queue
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from opero.core.cache import CacheLayer
from opero.core.options import DEFAULTS, Options
from opero.core.pipeline import Pipeline
from opero.decorators.opero import Hook, RetryOn, check_function
from opero.errors import OperomapError

if TYPE_CHECKING:  # the map machinery (multiprocessing, threads) loads on first decoration
    from opero.core.map_driver import MapSpec, Run

__all__ = ["MODES", "operomap"]

T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)

#: accepted ``mode`` values, with the aliases of the older map helpers
MODES = {
    "dask": "dask",
    "thread": "thread",
    "process": "process",
    "async": "async",
    "process_async": "process_async",
    "tmap": "thread",
    "pmap": "process",
    "amap": "async",
    "apmap": "process_async",
}
PROCESS_BATCH = 1024  #: attempts sent to a worker process at once, at most
THREAD_BATCH = 16
ASYNC_WORKERS = 100


class MapFunction(Protocol, Generic[R_co]):
    """An ``@operomap``-decorated function: ``f(items, *args, **kwargs) -> list``."""

    def __call__(self, items: Iterable[Any], *args: Any, **kwargs: Any) -> R_co: ...

    def iter(self, items: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        """Results as they are ready (an async iterator for async functions)."""

    def cache_clear(self) -> None:
        """Remove every cached result of the function."""


@overload
def operomap(  # type: ignore[overload-overlap]
    func: Callable[..., Coroutine[Any, Any, T]], /
) -> MapFunction[Coroutine[Any, Any, list[T]]]: ...


@overload
def operomap(func: Callable[..., T], /) -> MapFunction[list[T]]: ...


@overload
def operomap(
    func: None = None,
    /,
    *,
    cache: bool = True,
    cache_ttl: float | None = 3600,
    cache_backend: str = "memory",
    cache_key: Callable[..., Any] | None = None,
    cache_namespace: str = "opero",
    cache_maxsize: int = 10_000,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_url: str | None = None,
    cache_serializer: str = "pickle",
    retries: int = 3,
    backoff_factor: float = 1.5,
    min_delay: float = 0.1,
    max_delay: float = 30,
    retry_on: RetryOn = (Exception,),
    jitter: bool = True,
    timeout: float | None = None,
    arg_fallback: str | None = None,
    rate_limit: float | None = None,
    rate_limit_backend: str = "memory",
    on_retry: Hook | None = None,
    on_fallback: Hook | None = None,
    on_cache_hit: Hook | None = None,
    mode: str = "thread",
    workers: int | None = None,
    ordered: bool = True,
    progress: bool = True,
    return_exceptions: bool = False,
    executor: Executor | None = None,
    address: str | None = None,
    client: Any = None,
) -> _MapDecorator: ...


def operomap(
    func: Callable[..., Any] | None = None,
    /,
    *,
    cache: bool = True,
    cache_ttl: float | None = 3600,
    cache_backend: str = "memory",
    cache_key: Callable[..., Any] | None = None,
    cache_namespace: str = "opero",
    cache_maxsize: int = 10_000,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_url: str | None = None,
    cache_serializer: str = "pickle",
    retries: int = 3,
    backoff_factor: float = 1.5,
    min_delay: float = 0.1,
    max_delay: float = 30,
    retry_on: RetryOn = (Exception,),
    jitter: bool = True,
    timeout: float | None = None,
    arg_fallback: str | None = None,
    rate_limit: float | None = None,
    rate_limit_backend: str = "memory",
    on_retry: Hook | None = None,
    on_fallback: Hook | None = None,
    on_cache_hit: Hook | None = None,
    mode: str = "thread",
    workers: int | None = None,
    ordered: bool = True,
    progress: bool = True,
    return_exceptions: bool = False,
    executor: Executor | None = None,
    address: str | None = None,
    client: Any = None,
) -> Any:
    """Run one function over many inputs with the full ``@opero`` pipeline per item.

    ``@operomap(...)`` on ``def work(item, *extra)`` makes ``work(items, *extra)`` return the
    list of results (``await work(items)`` for an ``async def``); ``work.iter(items)`` yields
    results as they are ready. Every ``@opero`` option applies per item; cache lookups and
    stores and rate-limit slots happen in the caller, so they are global (``rate_limit=10``
    is 10 attempts per second in total, whatever ``workers`` is).

    Map options:
        mode: "thread" (default), "process", "async" (asyncio tasks for ``async def``; a sync
            function runs in threads), "process_async" (worker processes each running an
            event loop). Aliases: "tmap", "pmap", "amap", "apmap".
        workers: parallel workers (default: threads min(32, cpus + 4); processes: cpus;
            async: 100 tasks).
        ordered: results in input order (default True) or in completion order.
        progress: a progress bar on stderr when stderr is a terminal (default True).
        return_exceptions: return failed items' exceptions in the list instead of raising
            :class:`~opero.OperomapError` (default False).
        executor: any ``concurrent.futures.Executor`` to run attempts on (overrides
            ``mode``; opero never shuts it down).
        address: with mode="dask", the scheduler to connect to ("tcp://host:8786").
        client: with mode="dask", a ``dask.distributed.Client`` to use (not closed by opero).
            With neither, mode="dask" starts a ``LocalCluster`` for the call and closes it.

    Every item runs to its own end; then, if any failed, ``OperomapError`` is raised with
    ``.results`` holding every result and each failed item's exception in its place.
    """
    values = dict(locals())
    options = Options(**{name: values[name] for name in DEFAULTS})
    resolved = _check_map_options(mode, workers, ordered, progress, return_exceptions)
    _check_executor_options(resolved[0], executor, address, client)

    def decorate(fn: Callable[..., Any]) -> Any:
        return _decorate_map(
            fn, options, *resolved, executor=executor, address=address, client=client
        )

    if func is None:
        return decorate
    return decorate(func)


class _MapDecorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[..., Coroutine[Any, Any, T]], /
    ) -> MapFunction[Coroutine[Any, Any, list[T]]]: ...

    @overload
    def __call__(self, func: Callable[..., T], /) -> MapFunction[list[T]]: ...


def _check_map_options(
    mode: object, workers: object, ordered: object, progress: object, return_exceptions: object
) -> tuple[str, int | None, bool, bool, bool]:
    if mode not in MODES:
        accepted = ", ".join(repr(m) for m in MODES)
        raise ValueError(f"mode must be one of {accepted}, got {mode!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"workers must be an int >= 1 or None, got {workers!r}")
    for name, value in (
        ("ordered", ordered),
        ("progress", progress),
        ("return_exceptions", return_exceptions),
    ):
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    return MODES[str(mode)], workers, bool(ordered), bool(progress), bool(return_exceptions)


def _check_executor_options(mode: str, executor: object, address: object, client: object) -> None:
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(
            f"executor must be a concurrent.futures.Executor (a ThreadPoolExecutor, a "
            f"ProcessPoolExecutor, Client.get_executor()), got {executor!r}"
        )
    if (address is not None or client is not None) and (mode != "dask" or executor is not None):
        raise ValueError(
            f"address= and client= go with mode='dask' (and no executor=), got mode={mode!r}"
            + (" and an executor" if executor is not None else "")
        )
    if address is not None and client is not None:
        raise ValueError("give address= or client=, not both")
    if address is not None and not isinstance(address, str):
        raise TypeError(f"address must be a scheduler address str, got {address!r}")
    if mode == "dask" and executor is None:
        from opero.concurrency.executors import dask_extra_missing

        missing = dask_extra_missing()
        if missing is not None:
            raise ImportError(missing)


def _default_workers(kind: str) -> int:
    cpus = os.cpu_count() or 1
    if kind == "process":
        return cpus
    if kind == "tasks":
        return ASYNC_WORKERS
    return min(32, cpus + 4)


def _decorate_map(
    fn: Callable[..., Any],
    options: Options,
    mode: str,
    workers: int | None,
    ordered: bool,
    progress: bool,
    return_exceptions: bool,
    *,
    executor: Executor | None = None,
    address: str | None = None,
    client: Any = None,
) -> Any:
    from opero.concurrency.executors import ExecutorHandle
    from opero.core.map_driver import MapSpec

    fn = check_function(fn, "operomap")
    is_async = inspect.iscoroutinefunction(fn)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    handle_factory: Callable[[], ExecutorHandle] | None = None
    if executor is not None or mode == "dask":
        kind = "executor"
        if isinstance(executor, ProcessPoolExecutor) and ("<locals>" in name or "<lambda>" in name):
            raise TypeError(
                f"a ProcessPoolExecutor cannot load {name!r} in its workers: define it at "
                "module level, or use a ThreadPoolExecutor or mode='thread'"
            )

        def handle_factory() -> ExecutorHandle:
            return ExecutorHandle(
                executor=executor, client=client, address=address, workers=workers
            )

    elif mode in ("process", "process_async"):
        kind = "process"
        if "<locals>" in name or "<lambda>" in name or fn.__name__ == "<lambda>":
            raise TypeError(
                f"operomap(mode={mode!r}) cannot send {name!r} to worker processes: a lambda "
                "or a function defined inside another function cannot be loaded by name in a "
                "worker. Define it at module level (for a script, keep the map call under "
                "`if __name__ == '__main__':`), or use mode='thread' / mode='async'."
            )
    elif mode == "async" and is_async:
        kind = "tasks"
    else:
        kind = "thread"
    n = workers if workers is not None else _default_workers(kind)
    if kind == "executor":
        n = workers or (_executor_parallelism(executor) if executor is not None else 8)
        batch, bound = PROCESS_BATCH, n * PROCESS_BATCH * 2
    elif kind == "process":
        batch, bound = PROCESS_BATCH, n * PROCESS_BATCH * 2
    elif kind == "thread":
        batch, bound = THREAD_BATCH, n * 4
    else:
        batch, bound = 1, n
    pipeline = Pipeline(fn, options, name)
    layer = CacheLayer(fn, options, name) if options.cache else None
    spec = MapSpec(
        fn,
        pipeline,
        layer,
        kind=kind,
        workers=n,
        ordered=ordered,
        bound=bound,
        batch_max=batch,
        handle_factory=handle_factory,
    )
    runner = _MapRunner(spec, progress, return_exceptions)

    if is_async:

        async def call_async(items: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
            return await runner.collect(items, args, kwargs)

        def iter_async(items: Iterable[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            return runner.iterate(items, args, kwargs)

        wrapper: Any = call_async
        wrapper.iter = iter_async
    else:

        def call(items: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
            return _run_sync(runner.collect(items, args, kwargs))

        def iter_sync(items: Iterable[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
            return runner.iterate_sync(items, args, kwargs)

        wrapper = call
        wrapper.iter = iter_sync
    functools.update_wrapper(wrapper, fn)
    del wrapper.__wrapped__  # the map wrapper takes items, not the function's parameters
    wrapper.__signature__ = _map_signature(fn)
    wrapper.__opero_map_target__ = fn
    wrapper.cache_clear = layer.clear if layer is not None else _nothing
    wrapper.__opero_pipeline__ = pipeline
    wrapper.__opero_cache__ = layer
    wrapper.__opero_map__ = spec
    return wrapper


def _executor_parallelism(executor: Executor) -> int:
    from opero.concurrency.executors import executor_workers

    return executor_workers(executor)


def _nothing() -> None:
    """Nothing is cached (``cache=False``)."""


def _map_signature(fn: Callable[..., Any]) -> inspect.Signature:
    params = list(inspect.signature(fn).parameters.values())
    items = inspect.Parameter("items", inspect.Parameter.POSITIONAL_ONLY)
    return inspect.Signature([items, *params[1:]])


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to its end from sync code, even inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: list[Any] = []

    def target() -> None:
        try:
            box.append((True, asyncio.run(coro)))
        except BaseException as exc:
            box.append((False, exc))

    helper = threading.Thread(target=target, name="opero-map", daemon=True)
    helper.start()
    helper.join()
    ok, value = box[0]
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


class _Progress:
    """A tqdm bar on stderr when stderr is a terminal; nothing otherwise."""

    def __init__(self, enabled: bool, items: Iterable[Any], name: str) -> None:
        self.bar: Any = None
        if not enabled:
            return
        try:
            interactive = sys.stderr.isatty()
        except (AttributeError, ValueError):
            interactive = False
        if not interactive:
            return
        try:
            from tqdm import tqdm  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return
        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        self.bar = tqdm(total=total, desc=name, file=sys.stderr, leave=True, dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _MapRunner:
    """Collects a map's results as a list, or streams them."""

    def __init__(self, spec: MapSpec, progress: bool, return_exceptions: bool) -> None:
        self.spec = spec
        self.progress = progress
        self.return_exceptions = return_exceptions

    async def collect(
        self, items: Iterable[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        from opero.core.map_driver import MapDriver

        results: list[Any] = []
        failures: list[Exception] = []
        bar = _Progress(self.progress, items, self.spec.name)
        try:
            async for chunk in MapDriver(self.spec, items, args, kwargs).stream():
                before = len(results)
                for first, values, failed in chunk:
                    if failed is not None:
                        for pos in failed:
                            failures.append(_noted(values[pos], first + pos))
                    results.extend(values)
                bar.update(len(results) - before)
        finally:
            bar.close()
        if failures and not self.return_exceptions:
            raise OperomapError(
                f"{self.spec.name}: {len(failures)} of {len(results)} items failed",
                failures,
                results,
            )
        return results

    async def iterate(
        self, items: Iterable[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        from opero.core.map_driver import MapDriver

        failures: list[Exception] = []
        count = 0
        bar = _Progress(self.progress, items, self.spec.name)
        try:
            async for chunk in MapDriver(self.spec, items, args, kwargs).stream():
                for value, failure in _unroll(chunk, failures):
                    count += 1
                    if failure and not self.return_exceptions:
                        continue
                    yield value
                bar.update(sum(len(run[1]) for run in chunk))
        finally:
            bar.close()
        if failures and not self.return_exceptions:
            raise OperomapError(
                f"{self.spec.name}: {len(failures)} of {count} items failed", failures, []
            )

    def iterate_sync(
        self, items: Iterable[Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Iterator[Any]:
        """Drive :meth:`iterate` on a helper thread's event loop; hand results over in chunks."""
        from opero.core.map_driver import MapDriver

        handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
        control: dict[str, Any] = {}
        ready = threading.Event()

        async def pump() -> None:
            control["loop"] = asyncio.get_running_loop()
            control["task"] = asyncio.current_task()
            ready.set()
            try:
                async for chunk in MapDriver(self.spec, items, args, kwargs).stream():
                    await _put(handoff, ("chunk", chunk))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                await _put(handoff, ("error", exc))
                return
            await _put(handoff, ("end", None))

        def drive() -> None:
            try:
                asyncio.run(pump())
            except asyncio.CancelledError:  # the consumer stopped early
                pass

        helper = threading.Thread(target=drive, name="opero-map-iter")
        helper.daemon = True
        helper.start()
        ready.wait()
        return self._consume(handoff, control, helper, items)

    def _consume(
        self,
        handoff: queue.Queue[tuple[str, Any]],
        control: dict[str, Any],
        helper: threading.Thread,
        items: Iterable[Any],
    ) -> Iterator[Any]:
        failures: list[Exception] = []
        count = 0
        bar = _Progress(self.progress, items, self.spec.name)
        finished = False
        try:
            while True:
                kind, payload = handoff.get()
                if kind == "end":
                    finished = True
                    break
                if kind == "error":
                    finished = True
                    raise payload
                chunk: list[Run] = payload
                bar.update(sum(len(run[1]) for run in chunk))
                for value, failure in _unroll(chunk, failures):
                    count += 1
                    if failure and not self.return_exceptions:
                        continue
                    yield value
        finally:
            bar.close()
            if not finished:
                loop, task = control["loop"], control["task"]
                loop.call_soon_threadsafe(task.cancel)
                while helper.is_alive():
                    try:  # unblock a pending hand-off so the helper can finish
                        handoff.get(timeout=0.05)
                    except queue.Empty:
                        pass
            helper.join()
        if failures and not self.return_exceptions:
            raise OperomapError(
                f"{self.spec.name}: {len(failures)} of {count} items failed", failures, []
            )


async def _put(handoff: queue.Queue[tuple[str, Any]], message: tuple[str, Any]) -> None:
    try:
        handoff.put_nowait(message)
    except queue.Full:
        await asyncio.to_thread(handoff.put, message)


def _unroll(chunk: list[Run], failures: list[Exception]) -> Iterator[tuple[Any, bool]]:
    """Each value of each run with whether it is a failure (noted and collected)."""
    for first, values, failed in chunk:
        if failed is None:
            for value in values:
                yield value, False
            continue
        for pos, value in enumerate(values):
            if pos in failed:
                failures.append(_noted(value, first + pos))
                yield value, True
            else:
                yield value, False


def _noted(exc: Exception, index: int) -> Exception:
    exc.add_note(f"operomap item {index}")
    return exc
