"""``@opero``: cache -> retry -> arg_fallback -> rate limit around one sync or async function.

Options are validated once (:class:`~opero.core.options.Options`); the decorator then
builds the cache layer and the pipeline and picks the wrapper that does the least work
per call: with no failure, a call is a ``try`` around the function, and a memory-cache
hit is a tuple and a dict lookup.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from opero.core.cache import KWD_MARK, MISS, CacheLayer, MemoryStore
from opero.core.options import Options
from opero.core.pipeline import Pipeline

__all__ = ["OperoFunction", "opero"]

P = ParamSpec("P")
R = TypeVar("R")
Hook = Callable[[Any], object]
RetryOn = type[BaseException] | tuple[type[BaseException], ...]


class OperoFunction(Protocol, Generic[P, R]):
    """A function decorated by ``@opero``: same parameters and return type, plus
    ``cache_clear()``."""

    __wrapped__: Callable[P, R]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    def cache_clear(self) -> None:
        """Remove every cached result of this function."""


@overload
def opero(func: Callable[P, R], /) -> OperoFunction[P, R]: ...


@overload
def opero(
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
) -> Callable[[Callable[P, R]], OperoFunction[P, R]]: ...


def opero(
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
) -> Any:
    """Make one sync or async function resilient: cache -> retry -> arg_fallback -> rate limit.

    Use as ``@opero`` or ``@opero(...)``. A sync function stays sync and an ``async def``
    function stays a coroutine function; name, docstring, signature and type hints are kept.

    Cache (checked first; a hit makes no attempt and takes no rate-limit slot):
        cache: cache successful results (default True; use False for calls with side effects).
        cache_ttl: seconds a result stays valid (default 3600; None: no expiry).
        cache_backend: "memory" (per process, default), "disk" (persistent, shared by
            processes) or "redis" (shared by processes and machines).
        cache_key: callable taking the call's ``*args, **kwargs`` and returning the key
            (None: do not cache this call). Default: the arguments themselves.
        cache_namespace: prefix of disk and Redis keys (default "opero").
        cache_maxsize: entries kept by the memory backend, least recently used evicted
            (default 10_000).
        cache_dir: directory of the disk backend (default: the user cache dir + "opero").
        cache_url: Redis URL (default: $OPERO_REDIS_URL, else redis://localhost:6379/0); the
            Redis rate limit uses it too.
        cache_serializer: "pickle" (default, any picklable value) or "json" (JSON values
            only; reading cannot run code) for the disk and Redis backends.
    Retry (a round tries every fallback value; a failed round waits, then the next starts):
        retries: extra rounds after the first (default 3, so up to 4 rounds).
        backoff_factor: growth of the delay per round (default 1.5, >= 1).
        min_delay: delay before the first retry, seconds (default 0.1).
        max_delay: cap of every delay, seconds (default 30).
        retry_on: exception type(s) that are retried or fall back (default ``Exception``);
            cancellation, KeyboardInterrupt, SystemExit and GeneratorExit never are.
        jitter: spread each delay uniformly within +-25 % (default True). A ``retry_after``
            attribute or ``Retry-After`` header on the exception sets the delay instead.
        timeout: seconds one attempt may take before it is abandoned as a ``TimeoutError``
            (default None: no limit).
    Fallback:
        arg_fallback: name of a parameter whose list/tuple value is tried element by
            element within each round (default None). Each call receives one element.
    Rate limit (gates every attempt):
        rate_limit: attempts per second, shared by every thread and task (default None).
        rate_limit_backend: "memory" (default: one limit per process) or "redis" (one limit
            for every process using the same Redis).
    Hooks (plain callables receiving a frozen dataclass; their errors are logged and ignored):
        on_retry, on_fallback, on_cache_hit.

    Errors: without fallback values, the last original exception (earlier attempts in its
    notes); with them, :class:`~opero.AllFailedError` holding every attempt's exception.
    Invalid options raise ``ValueError``/``TypeError`` here, at decoration time.
    """
    options = Options(
        cache=cache,
        cache_ttl=cache_ttl,
        cache_backend=cache_backend,
        cache_key=cache_key,
        cache_namespace=cache_namespace,
        cache_maxsize=cache_maxsize,
        cache_dir=cache_dir,
        cache_url=cache_url,
        cache_serializer=cache_serializer,
        retries=retries,
        backoff_factor=backoff_factor,
        min_delay=min_delay,
        max_delay=max_delay,
        retry_on=retry_on,
        jitter=jitter,
        timeout=timeout,
        arg_fallback=arg_fallback,
        rate_limit=rate_limit,
        rate_limit_backend=rate_limit_backend,
        on_retry=on_retry,
        on_fallback=on_fallback,
        on_cache_hit=on_cache_hit,
    )

    def decorate(fn: Callable[..., Any]) -> Any:
        return decorate_with(fn, options)

    if func is None:
        return decorate
    return decorate(func)


def check_function(fn: object, decorator: str = "opero") -> Callable[..., Any]:
    """Refuse what a retrying decorator cannot wrap, with a message saying why."""
    if isinstance(fn, classmethod | staticmethod):
        raise TypeError(
            f"@{decorator} must be placed below @{type(fn).__name__} (closer to the def), "
            f"got a {type(fn).__name__} object"
        )
    if not callable(fn):
        raise TypeError(f"@{decorator} decorates a function, got {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        name = getattr(fn, "__qualname__", fn)
        raise TypeError(
            f"@{decorator} cannot wrap the generator function {name!r}: a retry "
            "cannot replay a half-consumed stream; return a list instead"
        )
    return fn


def decorate_with(fn: Callable[..., Any], options: Options) -> Any:
    """Build the wrapper of ``fn`` for already validated ``options``."""
    fn = check_function(fn)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    pipeline = Pipeline(fn, options, name)
    layer = CacheLayer(fn, options, name) if options.cache else None
    if inspect.iscoroutinefunction(fn):
        wrapper = _async_wrapper(fn, pipeline, layer)
    else:
        wrapper = _sync_wrapper(fn, pipeline, layer)
    functools.update_wrapper(wrapper, fn)
    wrapper.cache_clear = layer.clear if layer is not None else _nothing
    wrapper.__opero_pipeline__ = pipeline
    wrapper.__opero_cache__ = layer
    return wrapper


def _nothing() -> None:
    """Nothing is cached (``cache=False``)."""


def _sync_wrapper(fn: Callable[..., Any], pipeline: Pipeline, layer: CacheLayer | None) -> Any:
    run = pipeline.run
    retry_on = pipeline.retry_on
    core: Callable[[tuple[Any, ...], dict[str, Any]], Any]
    if pipeline.direct:

        def core(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                return fn(*args, **kwargs)
            except retry_on as exc:
                return run(args, kwargs, exc)

    else:
        core = run

    if layer is None:
        if not pipeline.direct:

            def call(*args: Any, **kwargs: Any) -> Any:
                return run(args, kwargs)

            return call

        def call_direct(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except retry_on as exc:
                return run(args, kwargs, exc)

        return call_direct

    key_of, get, fill = layer.key, layer.get, layer.fill

    def cached(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = key_of(args, kwargs)
        if key is None:
            return core(args, kwargs)
        value = get(key)
        if value is not MISS:
            return value
        return fill(key, core, args, kwargs)

    if not (layer.fast and layer.on_hit is None):

        def call_cached(*args: Any, **kwargs: Any) -> Any:
            return cached(args, kwargs)

        return call_cached

    store = layer.store
    assert isinstance(store, MemoryStore)
    lookup, touch, timer = store.data.get, store.data.move_to_end, store.timer

    def call_memory(*args: Any, **kwargs: Any) -> Any:
        key = (*args, KWD_MARK, *kwargs.items()) if kwargs else args
        try:
            entry = lookup(key)
        except TypeError:  # unhashable arguments
            return cached(args, kwargs)
        if entry is not None and entry[0] > timer():
            try:
                touch(key)
            except KeyError:
                pass
            return entry[1]
        return fill(key, core, args, kwargs)

    return call_memory


def _async_wrapper(fn: Callable[..., Any], pipeline: Pipeline, layer: CacheLayer | None) -> Any:
    run = pipeline.run_async
    retry_on = pipeline.retry_on
    core: Callable[[tuple[Any, ...], dict[str, Any]], Coroutine[Any, Any, Any]]
    if pipeline.direct:

        async def core(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                return await fn(*args, **kwargs)
            except retry_on as exc:
                return await run(args, kwargs, exc)

    else:
        core = run

    if layer is None:
        if not pipeline.direct:

            async def call(*args: Any, **kwargs: Any) -> Any:
                return await run(args, kwargs)

            return call

        async def call_direct(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except retry_on as exc:
                return await run(args, kwargs, exc)

        return call_direct

    key_of, get, aget, fill = layer.key, layer.get, layer.aget, layer.fill_async
    native = layer.async_store  # Redis: await the lookup instead of blocking the loop

    async def cached(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = key_of(args, kwargs)
        if key is None:
            return await core(args, kwargs)
        value = await aget(key) if native else get(key)
        if value is not MISS:
            return value
        return await fill(key, core, args, kwargs)

    if not (layer.fast and layer.on_hit is None):

        async def call_cached(*args: Any, **kwargs: Any) -> Any:
            return await cached(args, kwargs)

        return call_cached

    store = layer.store
    assert isinstance(store, MemoryStore)
    lookup, touch, timer = store.data.get, store.data.move_to_end, store.timer

    async def call_memory(*args: Any, **kwargs: Any) -> Any:
        key = (*args, KWD_MARK, *kwargs.items()) if kwargs else args
        try:
            entry = lookup(key)
        except TypeError:
            return await cached(args, kwargs)
        if entry is not None and entry[0] > timer():
            try:
                touch(key)
            except KeyError:
                pass
            return entry[1]
        return await fill(key, core, args, kwargs)

    return call_memory
