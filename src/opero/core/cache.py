"""The cache layer: key building, the memory and disk stores, and filling on a miss.

Memory keys follow ``functools.lru_cache`` (arguments as given, hashable values used
directly) so that a hit costs a tuple and a dict lookup. Unhashable arguments, and every
disk key, go through the stable encoding of :mod:`opero.core.keys`. A store that fails
at run time never fails the call: the call runs uncached and the failure is reported by
:func:`opero.core.health.report_backend_failure`.
"""

from __future__ import annotations

import inspect
import os
import pickle
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from loguru import logger

from opero.core.clock import CLOCK
from opero.core.health import report_backend_failure
from opero.core.keys import Unkeyable, digest
from opero.core.options import Options
from opero.core.redis_client import BackendDown
from opero.core.serialize import Unserializable, dumps, loads
from opero.core.singleflight import SingleFlight

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["KWD_MARK", "MISS", "CacheLayer", "DiskStore", "MemoryStore"]


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<MISS>"


MISS: Any = _Miss()
KWD_MARK = _Miss()  # separates positional from keyword arguments in memory keys
_UNPICKLABLE = (Unserializable, pickle.PicklingError, TypeError, AttributeError, RecursionError)


class Store(Protocol):
    backend: str

    def get(self, key: Hashable) -> Any: ...
    def set(self, key: Hashable, value: Any) -> None: ...
    def clear(self) -> None: ...


class MemoryStore:
    """A bounded LRU mapping with a TTL, per decorated function.

    Reads are lock-free (single C-level dict operations); writes and evictions take a lock.
    ``data`` maps key -> ``(expires_at, value)`` on the :data:`CLOCK` monotonic clock.
    """

    backend = "memory"

    def __init__(self, maxsize: int, ttl: float | None) -> None:
        self.data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.maxsize = maxsize
        self.ttl = ttl
        self.timer = CLOCK.monotonic
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        entry = self.data.get(key)
        if entry is None:
            return MISS
        if entry[0] <= self.timer():
            with self._lock:  # drop it unless another thread stored a fresh entry meanwhile
                if self.data.get(key) is entry:
                    del self.data[key]
            return MISS
        try:
            self.data.move_to_end(key)
        except KeyError:
            pass
        return entry[1]

    def set(self, key: Hashable, value: Any) -> None:
        expires = float("inf") if self.ttl is None else self.timer() + self.ttl
        with self._lock:
            self.data[key] = (expires, value)
            self.data.move_to_end(key)
            while len(self.data) > self.maxsize:
                self.data.popitem(last=False)

    def set_many(self, pairs: Iterable[tuple[Hashable, Any]]) -> None:
        expires = float("inf") if self.ttl is None else self.timer() + self.ttl
        data = self.data
        with self._lock:
            for key, value in pairs:
                data[key] = (expires, value)
                data.move_to_end(key)
            while len(data) > self.maxsize:
                data.popitem(last=False)

    def discard(self, keys: Iterable[Hashable]) -> None:
        with self._lock:
            for key in keys:
                self.data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.data.clear()


_disk_caches: dict[str, Any] = {}
_disk_lock = threading.Lock()


def default_cache_dir() -> Path:
    """The platform's user cache directory for opero."""
    from pathlib import Path

    import platformdirs

    return Path(platformdirs.user_cache_dir("opero", appauthor=False))


def _open_disk_cache(directory: Path) -> Any:
    """One shared ``diskcache.Cache`` per directory, created private (0700)."""
    path = str(directory.expanduser().resolve())
    with _disk_lock:
        cache = _disk_caches.get(path)
        if cache is None:
            import diskcache

            os.makedirs(path, mode=0o700, exist_ok=True)
            cache = _disk_caches[path] = diskcache.Cache(path)
        return cache


class DiskStore:
    """Persistent entries in a ``diskcache`` directory, shared by processes.

    Values are stored as bytes of the chosen serializer. Every entry of one function in one
    namespace carries the tag ``prefix`` so that :meth:`clear` removes exactly those. Opened
    lazily on first use.
    """

    backend = "disk"
    shared = False  # processes share entries, but concurrent misses are not coordinated

    def __init__(
        self, directory: Path | None, ttl: float | None, prefix: str, serializer: str = "pickle"
    ) -> None:
        self.directory = directory
        self.ttl = ttl
        self.prefix = prefix
        self.serializer = serializer
        self._cache: Any = None

    def _open(self) -> Any:
        if self._cache is None:
            self._cache = _open_disk_cache(self.directory or default_cache_dir())
        return self._cache

    def get(self, key: Hashable) -> Any:
        data = self._open().get(key, default=MISS, retry=True)
        return MISS if data is MISS else loads(data, self.serializer)

    def set(self, key: Hashable, value: Any) -> None:
        data = dumps(value, self.serializer)
        self._open().set(key, data, expire=self.ttl, tag=self.prefix, retry=True)

    def clear(self) -> None:
        self._open().evict(self.prefix, retry=True)


class CacheLayer:
    """Keys, store and single-flight of one decorated function."""

    def __init__(self, func: Callable[..., Any], options: Options, name: str) -> None:
        self.name = name
        self.func = func
        self.options = options
        self.cache_key = options.cache_key
        self.on_hit = options.on_cache_hit
        self.flights = SingleFlight()
        self.prefix = f"{options.cache_namespace}:{func.__module__}.{name}"
        self.store: Any
        if options.cache_backend == "memory":
            self.store = MemoryStore(options.cache_maxsize, options.cache_ttl)
        elif options.cache_backend == "disk":
            from pathlib import Path

            directory = Path(options.cache_dir) if options.cache_dir is not None else None
            self.store = DiskStore(
                directory, options.cache_ttl, self.prefix, options.cache_serializer
            )
        else:
            from opero.core.redis_store import RedisStore

            self.store = RedisStore(
                options.cache_url, options.cache_ttl, self.prefix, options.cache_serializer
            )
        #: the store has native async calls (Redis): async functions await them
        self.async_store = hasattr(self.store, "aget")
        self.shared = bool(getattr(self.store, "shared", False))
        self.backend = self.store.backend
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters)
        # Instance methods: ``self`` is keyed by identity in memory (see _owner_key).
        self.keys_self = bool(params) and params[0] == "self" and self.backend == "memory"
        self._owners: dict[int, Any] = {}
        self._owner_keys: dict[int, set[Hashable]] = {}
        self._owner_lock = threading.Lock()
        #: the memory hit path can be inlined by the decorator (no hook, no key function)
        self.fast = self.backend == "memory" and self.cache_key is None and not self.keys_self

    # ----- keys ---------------------------------------------------------------------
    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
        """The cache key of a call, or None when it is not cacheable."""
        try:
            if self.cache_key is not None:
                return self._user_key(args, kwargs)
            if self.backend == "memory":
                return self._memory_key(args, kwargs)
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return f"{self.prefix}:{digest(tuple(bound.arguments.items()))}"
        except Unkeyable as exc:
            logger.debug("{}: call not cached: {}", self.name, exc)
            return None

    def _user_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
        assert self.cache_key is not None
        result = self.cache_key(*args, **kwargs)
        if result is None:
            return None
        if self.backend == "memory":
            try:
                hash(result)
            except TypeError:
                return ("k", digest(result))
            return ("k", result)
        return f"{self.prefix}:k:{digest(result)}"

    def _memory_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
        head: tuple[Any, ...] = ()
        if self.keys_self and args:
            head, args = (_Identity(id(args[0])),), args[1:]
        key: tuple[Any, ...] = (
            (*head, *args, KWD_MARK, *kwargs.items()) if kwargs else (*head, *args)
        )
        try:
            hash(key)
        except TypeError:  # unhashable arguments: their stable encoding instead
            return ("s", *head, digest((args, kwargs)))
        return key

    def _track_owner(self, args: tuple[Any, ...], key: Hashable) -> None:
        """Drop an instance's entries when it dies, so the cache keeps no instance alive."""
        owner = args[0]
        ident = id(owner)
        with self._owner_lock:
            keys = self._owner_keys.get(ident)
            if keys is None:
                keys = self._owner_keys[ident] = set()
                try:
                    self._owners[ident] = weakref.ref(owner, self._owner_died(ident))
                except TypeError:  # not weak-referenceable: hold it, so its id stays unique
                    self._owners[ident] = owner
            keys.add(key)

    def _owner_died(self, ident: int) -> Callable[[Any], None]:
        def callback(_ref: Any) -> None:
            with self._owner_lock:
                self._owners.pop(ident, None)
                keys = self._owner_keys.pop(ident, set())
            if isinstance(self.store, MemoryStore):
                self.store.discard(keys)

        return callback

    # ----- lookups and stores, never failing the call ---------------------------------
    def get(self, key: Hashable) -> Any:
        try:
            value = self.store.get(key)
        except BackendDown:
            return MISS
        except Exception as exc:
            report_backend_failure(self.backend, "read", exc)
            return MISS
        if value is not MISS and self.on_hit is not None:
            self._hit(key)
        return value

    async def aget(self, key: Hashable) -> Any:
        if not self.async_store:
            return self.get(key)
        try:
            value = await self.store.aget(key)
        except BackendDown:
            return MISS
        except Exception as exc:
            report_backend_failure(self.backend, "read", exc)
            return MISS
        if value is not MISS and self.on_hit is not None:
            self._hit(key)
        return value

    def _hit(self, key: Hashable) -> None:
        from opero.core.hooks import CacheHitDetails, fire

        fire(self.on_hit, CacheHitDetails(self.name, self.backend, key))

    def put(self, key: Hashable, value: Any, args: tuple[Any, ...]) -> None:
        try:
            self.store.set(key, value)
        except BackendDown:
            return
        except _UNPICKLABLE as exc:
            logger.debug("{}: result not cached, it cannot be serialized: {!r}", self.name, exc)
            return
        except Exception as exc:
            report_backend_failure(self.backend, "write", exc)
            return
        if self.keys_self and args:
            self._track_owner(args, key)

    async def aput(self, key: Hashable, value: Any, args: tuple[Any, ...]) -> None:
        if not self.async_store:
            self.put(key, value, args)
            return
        try:
            await self.store.aset(key, value)
        except BackendDown:
            return
        except _UNPICKLABLE as exc:
            logger.debug("{}: result not cached, it cannot be serialized: {!r}", self.name, exc)
        except Exception as exc:
            report_backend_failure(self.backend, "write", exc)

    def put_many(
        self, keys: list[Hashable | None], values: list[Any], rows: list[tuple[Any, ...]]
    ) -> None:
        """:meth:`put` for many calls at once (None keys skipped; one lock for memory)."""
        store = self.store
        if isinstance(store, MemoryStore) and not self.keys_self:
            store.set_many((k, v) for k, v in zip(keys, values, strict=True) if k is not None)
            return
        for key, value, args in zip(keys, values, rows, strict=True):
            if key is not None:
                self.put(key, value, args)

    def clear(self) -> None:
        """Remove every entry of this function (in this namespace, for disk)."""
        with self._owner_lock:
            self._owners.clear()
            self._owner_keys.clear()
        try:
            self.store.clear()
        except Exception as exc:
            report_backend_failure(self.backend, "clear", exc)

    # ----- filling a miss, once per key -----------------------------------------------
    def fill(
        self,
        key: Hashable,
        run: Callable[[tuple[Any, ...], dict[str, Any]], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Compute a missed key once across threads; store and return the value."""
        logger.debug("{}: cache miss", self.name)
        flights = self.flights
        while True:
            flight, leader = flights.join(key)
            if not leader:
                flights.wait(flight)
                if flight.abandoned:
                    continue
                return flight.outcome()
            try:
                value = self.get(key)
                if value is MISS and self.shared:  # other processes may be computing it
                    value = self._compute_shared(key, run, args, kwargs)
                elif value is MISS:
                    value = run(args, kwargs)
                    self.put(key, value, args)
            except BaseException as exc:
                flights.fail(key, flight, exc)
                raise
            flights.succeed(key, flight, value)
            return value

    async def fill_async(
        self,
        key: Hashable,
        run: Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Compute a missed key once across tasks and threads; store and return the value."""
        logger.debug("{}: cache miss", self.name)
        flights = self.flights
        while True:
            flight, leader = flights.join(key)
            if not leader:
                await flights.wait_async(flight)
                if flight.abandoned:
                    continue
                return flight.outcome()
            try:
                value = await self.aget(key)
                if value is MISS and self.shared:  # other processes may be computing it
                    value = await self._compute_shared_async(key, run, args, kwargs)
                elif value is MISS:
                    value = await run(args, kwargs)
                    await self.aput(key, value, args)
            except BaseException as exc:
                flights.fail(key, flight, exc)
                raise
            flights.succeed(key, flight, value)
            return value

    def _compute_shared(
        self,
        key: Hashable,
        run: Callable[[tuple[Any, ...], dict[str, Any]], Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Compute ``key`` once across processes (a lease on the shared store)."""
        store = self.store
        while True:
            token = store.lease(key)
            if token is not None:
                try:
                    value = run(args, kwargs)
                    self.put(key, value, args)
                    return value
                finally:
                    store.release(key, token)
            value = store.wait(key)  # another process computes it
            if value is not MISS:
                return value

    async def _compute_shared_async(
        self,
        key: Hashable,
        run: Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[Any]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        store = self.store
        while True:
            token = await store.alease(key)
            if token is not None:
                try:
                    value = await run(args, kwargs)
                    await self.aput(key, value, args)
                    return value
                finally:
                    await store.arelease(key, token)
            value = await store.await_value(key)
            if value is not MISS:
                return value


class _Identity:
    """Stands for an instance in a memory key: equal only to itself's id."""

    __slots__ = ("ident",)

    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __hash__(self) -> int:
        return hash(self.ident)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Identity) and other.ident == self.ident

    def __repr__(self) -> str:
        return f"<instance id={self.ident:#x}>"
