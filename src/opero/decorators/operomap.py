"""``@operomap``: the ``@opero`` pipeline over many inputs, in threads, processes or tasks.

The decorated callable takes an iterable; each item is passed as the first positional
argument, extra arguments go to every call. Cache and rate limit live in the caller and are
global; workers only run attempts (see :mod:`opero.maps.map_driver`). The call and
``.iter()`` API is :mod:`opero.decorators.map_api`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, Unpack, overload

from opero.combinations import check_stream_max
from opero.core.callables import is_async_callable, stream_kind
from opero.core.collect import collected
from opero.core.deadline import current
from opero.core.stats import CacheInfo, Stats
from opero.decorators.map_api import MapRunner, run_sync
from opero.decorators.map_variants import map_variants, runner_for
from opero.decorators.observe import attach
from opero.decorators.opero import check_function
from opero.decorators.parts import build, name_of
from opero.decorators.placement import placement, size_of
from opero.options import MODES, resolve, signature

if TYPE_CHECKING:
    from opero.decorators.variants import CallOptions
    from opero.maps.map_driver import MapSpec
    from opero.options import OperomapOptions

__all__ = ["MODES", "MapFunction", "operomap"]

T = TypeVar("T")
R_co = TypeVar("R_co", covariant=True)


class MapFunction(Protocol, Generic[R_co]):
    """An ``@operomap``-decorated function: ``f(items, *args, **kwargs) -> list``."""

    def __call__(self, items: Iterable[Any], *args: Any, **kwargs: Any) -> R_co: ...

    def iter(self, items: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        """Results as they are ready (an async iterator for async functions)."""

    def cache_clear(self) -> None:
        """Remove every cached result of the function."""

    def cache_info(self) -> CacheInfo:
        """``(hits, misses, maxsize, currsize)``, as ``functools.lru_cache`` reports them."""
        ...

    def stats(self) -> Stats:
        """What happened since decoration (each item is a call)."""
        ...

    def with_options(self, **overrides: Unpack[CallOptions]) -> MapFunction[R_co]:
        """This map with ``cache`` (True, False, "refresh"), ``retries``, ``deadline``,
        ``timeout`` or ``retry_on_result`` changed for its items; it shares the map's cache,
        limits, pauses, budget and stats."""
        ...


@overload
def operomap(  # type: ignore[overload-overlap]
    func: Callable[..., Coroutine[Any, Any, T]], /
) -> MapFunction[Coroutine[Any, Any, list[T]]]: ...


@overload
def operomap(func: Callable[..., T], /) -> MapFunction[list[T]]: ...


@overload
def operomap(func: None = None, /, **options: Unpack[OperomapOptions]) -> _MapDecorator: ...


def operomap(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Run one function over many inputs with the full ``@opero`` pipeline per item.

    ``@operomap(...)`` on ``def work(item, *extra)`` makes ``work(items, *extra)`` return the
    list of results (``await work(items)`` for an ``async def``); ``work.iter(items)`` yields
    results as they are ready. Every ``@opero`` option applies per item; cache lookups and
    stores and rate-limit admissions happen in the caller, so they are global (``rate_limit=10``
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
        fail_fast: None (default) or N: after N items in a row have failed (in completion
            order), start no further item; the items not started fail with
            :class:`~opero.MapStoppedError` (caused by the last failure), without an
            attempt. An item starts when its first attempt is given a worker; in a process
            or executor map fed in bulk, when the job holding it is handed to a worker.

    With ``deadline=``, each item's budget counts from when the map takes it up (its cache
    lookup). A map called inside ``opero.deadline()`` starts no item after that deadline:
    those fail with :class:`~opero.DeadlineExceededError` without an attempt.

    Every item runs to its own end; then, if any failed, ``OperomapError`` is raised with
    ``.results`` holding every result and each failed item's exception in its place.
    """
    resolved: OperomapOptions = resolve(options, map_options=True)
    if resolved["mode"] == "dask" and resolved["executor"] is None:
        from opero.maps.executors import dask_extra_missing

        missing = dask_extra_missing()
        if missing is not None:
            raise ImportError(missing)

    def decorate(fn: Callable[..., Any]) -> Any:
        check_stream_max(options, fn, stream_kind(fn) is not None)
        return _decorate_map(fn, resolved)

    if func is None:
        return decorate
    return decorate(func)


operomap.__signature__ = signature(map_options=True)  # type: ignore[attr-defined]


class _MapDecorator(Protocol):
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[..., Coroutine[Any, Any, T]], /
    ) -> MapFunction[Coroutine[Any, Any, list[T]]]: ...

    @overload
    def __call__(self, func: Callable[..., T], /) -> MapFunction[list[T]]: ...


def _decorate_map(fn: Callable[..., Any], options: OperomapOptions) -> Any:
    from opero.maps.map_driver import MapSpec

    fn = check_function(fn, "operomap")
    raw, kind = fn, stream_kind(fn)
    if kind is not None:  # a stream: each item's result is the list of its items
        fn = collected(fn, kind, options["cache_stream_max"])
    is_async = is_async_callable(fn)
    placed = placement(fn, name_of(fn), options, is_async)
    size = size_of(placed.where, options["workers"], options["executor"])
    # keys from the generator function itself; its attempts collect the stream
    judge, layer = build(raw, options, runs=fn)
    spec = MapSpec(
        fn,
        judge,
        layer,
        mode=placed.where,
        workers=size.workers,
        ordered=options["ordered"],
        bound=size.bound,
        batch_max=size.batch,
        handle_factory=placed.handle_factory,
        target=placed.target,
        fail_fast=options["fail_fast"],
    )
    return _wrap(fn, spec, options, is_async)


def _wrap(fn: Callable[..., Any], spec: MapSpec, options: OperomapOptions, is_async: bool) -> Any:
    """The map function of ``spec``: its call, ``.iter``, observability and variants."""

    def runner_of(of: MapSpec) -> MapRunner:
        return MapRunner(of, options["progress"], options["return_exceptions"])

    # telemetry: the runner (a twin while telemetry is enabled) and the items' parent span
    pick = runner_for(fn, spec, runner_of(spec), runner_of)

    if is_async:

        async def call_async(items: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
            runner, parent = pick()
            return await runner.collect(items, args, kwargs, current(), parent)

        def iter_async(items: Iterable[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            runner, parent = pick()
            return runner.iterate(items, args, kwargs, current(), parent)

        wrapper: Any = call_async
        wrapper.iter = iter_async
    else:
        # the deadline enclosing the call is read here: the map's loop may run on a helper
        # thread, which does not see the caller's context
        def call(items: Iterable[Any], *args: Any, **kwargs: Any) -> list[Any]:
            runner, parent = pick()
            return run_sync(runner.collect(items, args, kwargs, current(), parent))

        def iter_sync(items: Iterable[Any], *args: Any, **kwargs: Any) -> Iterator[Any]:
            runner, parent = pick()
            return runner.iterate_sync(items, args, kwargs, current(), parent)

        wrapper = call
        wrapper.iter = iter_sync
    functools.update_wrapper(wrapper, fn)
    del wrapper.__wrapped__  # the map wrapper takes items, not the function's parameters
    wrapper.__signature__ = _map_signature(fn)
    wrapper.__opero_map_target__ = fn
    attach(wrapper, spec.judge, spec.layer)
    wrapper.__opero_map__ = spec
    wrapper.with_options = map_variants(fn, spec, lambda s: _wrap(fn, s, options, is_async))
    return wrapper


def _map_signature(fn: Callable[..., Any]) -> inspect.Signature:
    params = list(inspect.signature(fn).parameters.values())
    items = inspect.Parameter("items", inspect.Parameter.POSITIONAL_ONLY)
    return inspect.Signature([items, *params[1:]])
