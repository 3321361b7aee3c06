"""The wrappers of ``@opero``, sync and async, each picking the variant that does the least
work per call: with no failure, a call is a ``try`` around the function, and a memory-cache
hit is a tuple and a dict lookup."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from opero.cache.layer import CacheLayer
from opero.cache.memory import MemoryStore
from opero.cache.store import KWD_MARK, MISS
from opero.core.callables import CoroutineType, refuse_awaitable
from opero.core.pipeline import Pipeline

__all__ = ["async_wrapper", "sync_wrapper"]


def sync_wrapper(fn: Callable[..., Any], pipeline: Pipeline, layer: CacheLayer | None) -> Any:
    c = pipeline.counters
    pauses = pipeline.pauses
    run = pipeline.run
    retry_on = pipeline.retry_on
    core: Callable[[tuple[Any, ...], dict[str, Any]], Any]
    name = pipeline.name
    if pipeline.direct:

        def core(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if pauses.active:
                return run(args, kwargs)
            c.attempts += 1
            try:
                result = fn(*args, **kwargs)
            except retry_on as exc:
                return run(args, kwargs, exc)
            if type(result) is CoroutineType:
                refuse_awaitable(name, result)
            c.success(None)
            return result

    else:
        core = run

    if layer is None:
        if not pipeline.direct:

            def call(*args: Any, **kwargs: Any) -> Any:
                c.entered += 1
                return run(args, kwargs)

            return call

        def call_direct(*args: Any, **kwargs: Any) -> Any:
            if pauses.active:  # a server asked every caller to wait
                c.entered += 1
                return run(args, kwargs)
            c.direct += 1
            try:
                result = fn(*args, **kwargs)
            except retry_on as exc:
                c.direct_failed += 1
                return run(args, kwargs, exc)
            if type(result) is CoroutineType:
                refuse_awaitable(name, result)
            return result

        return call_direct

    key_of, get, fill = layer.key, layer.get, layer.fill

    def cached(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = key_of(args, kwargs)
        if key is None:
            c.entered += 1
            return core(args, kwargs)
        value = get(key)
        if value is not MISS:
            c.hits += 1
            return value
        c.entered += 1
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
        except Exception:  # unhashable arguments (or a raising __hash__): the slow key
            return cached(args, kwargs)
        if entry is not None and entry[0] > timer():
            try:
                touch(key)
            except KeyError:
                pass
            c.hits += 1
            return entry[1]
        c.entered += 1
        return fill(key, core, args, kwargs)

    return call_memory


def async_wrapper(fn: Callable[..., Any], pipeline: Pipeline, layer: CacheLayer | None) -> Any:
    c = pipeline.counters
    pauses = pipeline.pauses
    run = pipeline.run_async
    retry_on = pipeline.retry_on
    core: Callable[[tuple[Any, ...], dict[str, Any]], Coroutine[Any, Any, Any]]
    if pipeline.direct:

        async def core(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if pauses.active:
                return await run(args, kwargs)
            c.attempts += 1
            try:
                result = await fn(*args, **kwargs)
            except retry_on as exc:
                return await run(args, kwargs, exc)
            c.success(None)
            return result

    else:
        core = run

    if layer is None:
        if not pipeline.direct:

            async def call(*args: Any, **kwargs: Any) -> Any:
                c.entered += 1
                return await run(args, kwargs)

            return call

        async def call_direct(*args: Any, **kwargs: Any) -> Any:
            if pauses.active:  # a server asked every caller to wait
                c.entered += 1
                return await run(args, kwargs)
            c.direct += 1
            try:
                return await fn(*args, **kwargs)
            except retry_on as exc:
                c.direct_failed += 1
                return await run(args, kwargs, exc)

        return call_direct

    key_of, get, aget, fill = layer.key, layer.get, layer.aget, layer.fill_async
    # Redis: await the lookup; disk: on a worker thread; memory: inline
    native = layer.async_store or layer.offload

    async def cached(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        key = key_of(args, kwargs)
        if key is None:
            c.entered += 1
            return await core(args, kwargs)
        value = await aget(key) if native else get(key)
        if value is not MISS:
            c.hits += 1
            return value
        c.entered += 1
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
        except Exception:
            return await cached(args, kwargs)
        if entry is not None and entry[0] > timer():
            try:
                touch(key)
            except KeyError:
                pass
            c.hits += 1
            return entry[1]
        c.entered += 1
        return await fill(key, core, args, kwargs)

    return call_memory
