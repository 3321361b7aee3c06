"""The wrappers of ``@opero``, sync and async: the cache in front of the judge's call
(:mod:`opero.core.fast`), each picking the variant that does the least work per call: a
memory-cache hit is a tuple and a dict lookup; a miss runs the call's attempts once for
every caller waiting on the key. Calls and cache hits are counted here, where they enter;
everything about attempts is counted by the judge.

A ``twin`` (the same function with telemetry on, :mod:`opero.telemetry`) takes every call
while telemetry is enabled for all functions; it is looked at only once :data:`AMBIENT`
is on, so programs that never enable it pay one attribute test on a cache hit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opero.cache.layer import CacheLayer
from opero.cache.memory import MemoryStore
from opero.cache.store import KWD_MARK, MISS
from opero.core.call import Args, Kwargs
from opero.core.clock import CLOCK
from opero.core.deadline import AMBIENT, scope
from opero.core.fast import core_async, core_sync, entry_async, entry_sync
from opero.core.judge import Judge

__all__ = ["async_wrapper", "refresh_wrapper", "sync_wrapper", "within_deadline"]

Twin = Callable[..., Any] | None


def sync_wrapper(judge: Judge, layer: CacheLayer | None, twin: Twin = None) -> Any:
    if layer is None:
        return entry_sync(judge, twin)
    c, ambient = judge.counters, AMBIENT
    core = core_sync(judge)
    key_of, get, fill = layer.key, layer.get, layer.fill

    def cached(args: Args, kwargs: Kwargs) -> Any:
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
            if ambient.on and ambient.traced and twin is not None:
                return twin(*args, **kwargs)
            return cached(args, kwargs)

        return call_cached

    store = layer.store
    assert isinstance(store, MemoryStore)
    lookup, touch, timer = store.data.get, store.data.move_to_end, store.timer

    def call_memory(*args: Any, **kwargs: Any) -> Any:
        if ambient.on and ambient.traced and twin is not None:
            return twin(*args, **kwargs)
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


def async_wrapper(judge: Judge, layer: CacheLayer | None, twin: Twin = None) -> Any:
    if layer is None:
        return entry_async(judge, twin)
    c, ambient = judge.counters, AMBIENT
    core = core_async(judge)
    key_of, get, aget, fill = layer.key, layer.get, layer.aget, layer.fill_async
    # Redis: await the lookup; disk: on a worker thread; memory: inline
    native = layer.async_store or layer.offload

    async def cached(args: Args, kwargs: Kwargs) -> Any:
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
            if ambient.on and ambient.traced and twin is not None:
                return await twin(*args, **kwargs)
            return await cached(args, kwargs)

        return call_cached

    store = layer.store
    assert isinstance(store, MemoryStore)
    lookup, touch, timer = store.data.get, store.data.move_to_end, store.timer

    async def call_memory(*args: Any, **kwargs: Any) -> Any:
        if ambient.on and ambient.traced and twin is not None:
            return await twin(*args, **kwargs)
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


def within_deadline(wrapper: Any, seconds: float, is_async: bool) -> Any:
    """``wrapper`` whose every call, cache lookup included, has ``seconds`` to finish (or
    the enclosing deadline, if earlier); the calls made inside its attempts see it."""
    clock = CLOCK
    if is_async:

        async def call_async(*args: Any, **kwargs: Any) -> Any:
            with scope(clock.monotonic() + seconds):
                return await wrapper(*args, **kwargs)

        return call_async

    def call(*args: Any, **kwargs: Any) -> Any:
        with scope(clock.monotonic() + seconds):
            return wrapper(*args, **kwargs)

    return call


def refresh_wrapper(judge: Judge, layer: CacheLayer, twin: Twin = None) -> Any:
    """Calls that do not read the cache: they run and store their result."""
    c, key_of, ambient = judge.counters, layer.key, AMBIENT
    if judge.is_async:
        core_a, refresh_a = core_async(judge), layer.refresh_async

        async def call_async(*args: Any, **kwargs: Any) -> Any:
            if ambient.traced and twin is not None:
                return await twin(*args, **kwargs)
            c.entered += 1
            key = key_of(args, kwargs)
            if key is None:
                return await core_a(args, kwargs)
            return await refresh_a(key, core_a, args, kwargs)

        return call_async
    core, refresh = core_sync(judge), layer.refresh

    def call(*args: Any, **kwargs: Any) -> Any:
        if ambient.traced and twin is not None:
            return twin(*args, **kwargs)
        c.entered += 1
        key = key_of(args, kwargs)
        if key is None:
            return core(args, kwargs)
        return refresh(key, core, args, kwargs)

    return call
