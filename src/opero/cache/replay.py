"""The cache in front of a stream (a decorated generator or async-generator function).

A stream's cached value is the list of its items. A call finding it gets a new generator of
the same kind replaying the items; a call missing it streams through the judge's driver
(:mod:`opero.core.stream`), keeping the items as the caller consumes them, and stores the
list when the stream ends normally. A stream abandoned early or failing is not stored; one
longer than ``cache_stream_max`` items is passed through (its items no longer kept). There
is no single-flight: concurrent misses of one key each stream on their own. Calls and hits
are counted here, as :mod:`opero.decorators.wrappers` counts them for other functions.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Hashable
from typing import TYPE_CHECKING, Any

from opero.cache.calls import Args, Kwargs
from opero.cache.memory import MemoryStore
from opero.cache.store import KWD_MARK, MISS
from opero.core.stream import stream_sync
from opero.core.stream_async import stream_async

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.core.judge import Judge

__all__ = ["async_stream", "sync_stream"]

Lookup = Callable[[Args, Kwargs], tuple[Hashable | None, Any]]


def _lookup(layer: CacheLayer, read: bool) -> Lookup:
    """``(key, stored value or MISS)`` of a call (the key alone when not ``read``)."""
    key_of, get = layer.key, layer.get

    def slow(args: Args, kwargs: Kwargs) -> tuple[Hashable | None, Any]:
        key = key_of(args, kwargs)
        if key is None or not read:
            return key, MISS
        return key, get(key)

    if not (read and layer.fast and layer.on_hit is None):
        return slow
    store = layer.store
    assert isinstance(store, MemoryStore)
    find, touch, timer = store.data.get, store.data.move_to_end, store.timer

    def memory(args: Args, kwargs: Kwargs) -> tuple[Hashable | None, Any]:
        key = (*args, KWD_MARK, *kwargs.items()) if kwargs else args
        try:
            entry = find(key)
        except Exception:  # unhashable arguments (or a raising __hash__): the slow key
            return slow(args, kwargs)
        if entry is not None and entry[0] > timer():
            try:
                touch(key)
            except KeyError:
                pass
            return key, entry[1]
        return key, MISS

    return memory


def sync_stream(judge: Judge, layer: CacheLayer | None, read: bool = True) -> Any:
    """The decorated generator function: ``read`` False (``cache="refresh"``) skips the
    lookup, still storing the items."""
    c = judge.counters
    if layer is None:

        def uncached(*args: Any, **kwargs: Any) -> Generator[Any, None, None]:
            c.entered += 1
            yield from stream_sync(judge, args, kwargs)

        return uncached
    lookup, put = _lookup(layer, read), layer.put
    most: int = judge.options["cache_stream_max"]

    def kept(key: Hashable, args: Args, kwargs: Kwargs) -> Any:
        items: list[Any] | None = []
        for item in stream_sync(judge, args, kwargs):
            if items is not None:
                items = None if len(items) >= most else items
                if items is not None:
                    items.append(item)
            yield item
        if items is not None:
            put(key, items, args)

    def cached(*args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        key, value = lookup(args, kwargs)
        if value is not MISS:
            c.hits += 1
            yield from value
            return
        c.entered += 1
        if key is None:
            yield from stream_sync(judge, args, kwargs)
        else:
            yield from kept(key, args, kwargs)

    return cached


def async_stream(judge: Judge, layer: CacheLayer | None, read: bool = True) -> Any:
    """The decorated async-generator function (see :func:`sync_stream`)."""
    c = judge.counters
    if layer is None:

        async def uncached(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
            c.entered += 1
            run = stream_async(judge, args, kwargs)
            try:
                async for item in run:
                    yield item
            finally:
                await run.aclose()

        return uncached
    lookup, aput = _lookup(layer, read), layer.aput
    native = layer.async_store or layer.offload
    aget = layer.aget
    most: int = judge.options["cache_stream_max"]

    async def cached(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        if native and read:  # Redis awaited, disk on a worker thread
            key = layer.key(args, kwargs)
            value = MISS if key is None else await aget(key)
        else:
            key, value = lookup(args, kwargs)
        if value is not MISS:
            c.hits += 1
            for item in value:
                yield item
            return
        c.entered += 1
        items: list[Any] | None = None if key is None else []
        run = stream_async(judge, args, kwargs)
        try:
            async for item in run:
                if items is not None:
                    items = None if len(items) >= most else items
                    if items is not None:
                        items.append(item)
                yield item
        finally:
            await run.aclose()
        if items is not None:
            assert key is not None
            await aput(key, items, args)

    return cached
