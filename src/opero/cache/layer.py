"""The cache layer of one decorated function: its keys, its store and its single-flight.

Lookups and stores never fail the call: a store that fails at run time makes the call run
uncached, and the failure is reported by :func:`opero.core.health.report_backend_failure`.
Filling a miss lives in :mod:`opero.cache.fill`; computing a key again without reading it,
in :mod:`opero.cache.refresh`.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import warnings
from collections.abc import Callable, Hashable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from loguru import logger

from opero.cache.calls import Args, Kwargs, Run, RunAsync
from opero.cache.fill import fill, fill_async
from opero.cache.identity import Identity
from opero.cache.keys import CallKeys
from opero.cache.memory import MemoryStore
from opero.cache.refresh import refresh, refresh_async
from opero.cache.serialize import Unserializable
from opero.cache.singleflight import SingleFlight
from opero.cache.store import MISS, AsyncStore, SharedStore, Store
from opero.core.callables import is_stream
from opero.core.collect import Unkept
from opero.core.health import BackendDown, report_backend_failure

if TYPE_CHECKING:
    from opero.options import OperoOptions

__all__ = ["CacheLayer", "local_store"]

#: types that are never streams or awaitables (None included)
_PLAIN = frozenset({int, float, str, bytes, bool, tuple, list, dict, type(None)})
_UNPICKLABLE = (Unserializable, pickle.PicklingError, TypeError, AttributeError, RecursionError)


def local_store(options: OperoOptions, prefix: str) -> Store:
    """The memory or disk store that ``options`` ask for."""
    if options["cache_backend"] == "memory":
        return MemoryStore(options["cache_maxsize"], options["cache_ttl"])
    from pathlib import Path

    from opero.cache.disk import DiskStore

    cache_dir = options["cache_dir"]
    directory = Path(cache_dir) if cache_dir is not None else None
    return DiskStore(directory, options["cache_ttl"], prefix, options["cache_serializer"])


class CacheLayer:
    """Keys, store and single-flight of one decorated function."""

    def __init__(
        self,
        func: Callable[..., object],
        options: OperoOptions,
        name: str,
        store: Store,
        prefix: str,
        identity: Identity | None = None,
    ) -> None:
        self.name = name
        self.func = func
        self.on_hit = options["on_cache_hit"]
        self.flights = SingleFlight()
        self.prefix = prefix
        self.store = store
        #: the store's own async calls (disk, Redis): async functions await them
        self.native = store if isinstance(store, AsyncStore) else None
        self.async_store = self.native is not None
        #: the store does blocking I/O and has no async calls: async callers run it on a
        #: worker thread
        self.offload = not self.async_store and store.backend != "memory"
        self.shared = bool(getattr(store, "shared", False))
        #: the store other processes share (Redis): misses take its leases
        self.shared_store = cast(SharedStore, store) if self.shared else None
        self.backend: str = store.backend
        self.keys = CallKeys(
            func,
            name,
            cache_key=options["cache_key"],
            backend=self.backend,
            prefix=prefix,
            discard=store.discard if isinstance(store, MemoryStore) else None,
            live=store.data.__contains__ if isinstance(store, MemoryStore) else None,
            maxsize=options["cache_maxsize"],
            identity=identity,
        )
        self.key = self.keys.key
        self._warned_stream = False
        self.keys_self = self.keys.keys_self
        #: the memory hit path can be inlined by the decorator (no hook, no key function)
        self.fast = self.backend == "memory" and options["cache_key"] is None and not self.keys_self

    # ----- lookups and stores, never failing the call ---------------------------------
    def get(self, key: Hashable, *, quiet: bool = False) -> Any:
        """The stored value or ``MISS``; a hit is told to ``on_cache_hit`` unless ``quiet``
        (a second look made while filling a miss: the call is counted as a miss)."""
        try:
            value = self.store.get(key)
        except BackendDown:
            return MISS
        except Exception as exc:
            self._report("read", exc)
            return MISS
        if value is not MISS and self.on_hit is not None and not quiet:
            self._hit(key)
        return value

    async def aget(self, key: Hashable, *, quiet: bool = False) -> Any:
        native = self.native
        if native is None:
            if self.offload:  # blocking I/O never runs on the event loop
                return await asyncio.to_thread(partial(self.get, key, quiet=quiet))
            return self.get(key, quiet=quiet)
        try:
            value = await native.aget(key)
        except BackendDown:
            return MISS
        except Exception as exc:
            self._report("read", exc)
            return MISS
        if value is not MISS and self.on_hit is not None and not quiet:
            self._hit(key)
        return value

    def _report(self, what: str, exc: BaseException) -> None:
        report_backend_failure(
            self.backend,
            what,
            exc,
            name=self.name,
            location=getattr(self.store, "location", None),
            hide=getattr(self.store, "secrets", ()),
        )

    def _hit(self, key: Hashable) -> None:
        from opero.core.hooks import CacheHitDetails, fire

        fire(self.on_hit, CacheHitDetails(self.name, self.backend, key))

    def _storable(self, value: object) -> bool:
        """Streams (iterators, generators) and awaitables are never cached: a stream comes
        back used up; said once per decorated function."""
        if type(value) in _PLAIN:
            return True
        if type(value) is Unkept:  # a stream's items, more than cache_stream_max
            return False
        if is_stream(value) or inspect.isawaitable(value):
            if not self._warned_stream:
                self._warned_stream = True
                warnings.warn(
                    f"opero: {self.name} returned {type(value).__qualname__}, an iterator or "
                    "stream, which is consumed once: it is returned as it is and never cached "
                    "(decorate a generator function that yields the items instead: its items "
                    "are cached as a list; or return a list, or decorate with cache=False)",
                    UserWarning,
                    stacklevel=4,
                )
            return False
        return True

    def put(self, key: Hashable, value: object, args: Args) -> None:
        if not self._storable(value):
            return
        try:
            self.store.set(key, value)
        except BackendDown:
            return
        except _UNPICKLABLE as exc:
            logger.debug("{}: result not cached, it cannot be serialized: {!r}", self.name, exc)
            return
        except Exception as exc:
            self._report("write", exc)
            return
        if self.keys_self and args:
            self.keys.track(args, key)

    async def aput(self, key: Hashable, value: object, args: Args) -> None:
        if not self._storable(value):
            return
        native = self.native
        if native is None:
            if self.offload:
                await asyncio.to_thread(self.put, key, value, args)
            else:
                self.put(key, value, args)
            return
        try:
            await native.aset(key, value)
        except BackendDown:
            return
        except _UNPICKLABLE as exc:
            logger.debug("{}: result not cached, it cannot be serialized: {!r}", self.name, exc)
        except Exception as exc:
            self._report("write", exc)

    def put_many(self, keys: list[Hashable | None], values: list[object], rows: list[Args]) -> None:
        """:meth:`put` for many calls at once (None keys skipped; one lock for memory)."""
        store = self.store
        if not _PLAIN.issuperset(map(type, values)) and not all(map(self._storable, values)):
            self._put_each(keys, values, rows)
        elif isinstance(store, MemoryStore) and not self.keys_self:
            _set_many(store, keys, values)
        else:
            self._put_each(keys, values, rows)

    def _put_each(
        self, keys: list[Hashable | None], values: list[object], rows: list[Args]
    ) -> None:
        for key, value, args in zip(keys, values, rows, strict=True):
            if key is not None:
                self.put(key, value, args)

    def contains(self, key: Hashable) -> bool:
        """Whether ``key`` has a fresh entry; False (reported as a lookup is) when the store
        fails."""
        try:
            return bool(self.store.contains(key))
        except BackendDown:
            return False
        except Exception as exc:
            self._report("read", exc)
            return False

    def delete(self, key: Hashable) -> bool:
        """Remove ``key``'s entry: whether a fresh one was there; False (reported as a
        lookup is) when the store fails."""
        try:
            return bool(self.store.delete(key))
        except BackendDown:
            return False
        except Exception as exc:
            self._report("delete", exc)
            return False

    def clear(self) -> None:
        """Remove every entry of this function (in this namespace, for disk and Redis)."""
        self.keys.forget()
        try:
            self.store.clear()
        except Exception as exc:
            self._report("clear", exc)

    # ----- filling a miss, once per key (opero.cache.fill) ----------------------------
    def fill(
        self,
        key: Hashable,
        run: Run,
        args: Args,
        kwargs: Kwargs,
    ) -> Any:
        """Compute a missed key once; store and return the value."""
        return fill(self, key, run, args, kwargs)

    async def fill_async(
        self,
        key: Hashable,
        run: RunAsync,
        args: Args,
        kwargs: Kwargs,
    ) -> Any:
        """Compute a missed key once across tasks and threads; store and return the value."""
        return await fill_async(self, key, run, args, kwargs)

    def refresh(
        self,
        key: Hashable,
        run: Run,
        args: Args,
        kwargs: Kwargs,
    ) -> Any:
        """Compute ``key`` again without reading the cache; store and return the value."""
        return refresh(self, key, run, args, kwargs)

    async def refresh_async(
        self,
        key: Hashable,
        run: RunAsync,
        args: Args,
        kwargs: Kwargs,
    ) -> Any:
        """:meth:`refresh` for async functions."""
        return await refresh_async(self, key, run, args, kwargs)


def _set_many(store: MemoryStore, keys: list[Hashable | None], values: list[object]) -> None:
    """Store the values of the calls that have a key, under one lock."""
    if None in keys:
        kept = [(k, v) for k, v in zip(keys, values, strict=True) if k is not None]
        store.set_many([k for k, _ in kept], [v for _, v in kept])
    else:
        store.set_many(keys, values)
