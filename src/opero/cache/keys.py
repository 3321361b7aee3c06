"""The cache key of a call.

Memory keys follow ``functools.lru_cache`` (arguments as given, hashable values used
directly) so that a hit costs a tuple and a dict lookup. Unhashable arguments, and every
disk and Redis key, go through the stable encoding of :mod:`opero.cache.encoding`. For an
instance method with the memory store, ``self`` is keyed by identity and its entries are
dropped when the instance dies, so the cache keeps no instance alive.
"""

from __future__ import annotations

import inspect
import threading
import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any

from loguru import logger

from opero.cache.encoding import Unkeyable, digest
from opero.cache.store import KWD_MARK

__all__ = ["CallKeys", "key_prefix"]


def key_prefix(func: Callable[..., Any], namespace: str, name: str) -> str:
    """``namespace:module.qualname``: the start of every disk and Redis key of ``func``."""
    return f"{namespace}:{func.__module__}.{name}"


class CallKeys:
    """Builds the keys of one decorated function's calls."""

    def __init__(
        self,
        func: Callable[..., Any],
        name: str,
        *,
        cache_key: Callable[..., Any] | None,
        backend: str,
        prefix: str,
        discard: Callable[[Iterable[Hashable]], None] | None,
    ) -> None:
        self.name = name
        self.cache_key = cache_key
        self.memory = backend == "memory"
        self.prefix = prefix
        self.signature = inspect.signature(func)
        params = list(self.signature.parameters)
        #: instance methods: ``self`` is keyed by identity in memory
        self.keys_self = bool(params) and params[0] == "self" and self.memory
        self._discard = discard
        self._owners: dict[int, Any] = {}
        self._owner_keys: dict[int, set[Hashable]] = {}
        self._owner_lock = threading.Lock()

    def key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable | None:
        """The cache key of a call, or None when it is not cacheable."""
        try:
            if self.cache_key is not None:
                return self._user_key(args, kwargs)
            if self.memory:
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
        if self.memory:
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

    # ----- instances that own entries ---------------------------------------------------
    def track(self, args: tuple[Any, ...], key: Hashable) -> None:
        """Remember that ``args[0]``'s entry ``key`` goes when that instance dies."""
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
            if self._discard is not None:
                self._discard(keys)

        return callback

    def forget(self) -> None:
        """Drop every owner (the cache was cleared)."""
        with self._owner_lock:
            self._owners.clear()
            self._owner_keys.clear()


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
