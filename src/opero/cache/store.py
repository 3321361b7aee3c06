"""What a cache store is: the interface the cache layer talks to, and its sentinels.

A store maps keys to values. A store that other processes share (``shared = True``) also
offers leases, so that concurrent misses across processes compute once. A store that fails
at run time raises :class:`~opero.core.health.BackendDown` (already reported) or any other
exception (reported by the layer); the call then runs uncached.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Protocol, runtime_checkable

__all__ = ["KWD_MARK", "MISS", "AsyncStore", "SharedStore", "Store"]


class _Miss:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<MISS>"


MISS: Any = _Miss()  #: what a lookup returns when the key has no (valid) entry
KWD_MARK = _Miss()  #: separates positional from keyword arguments in memory keys


class Store(Protocol):
    """A key -> value store of one decorated function."""

    backend: str  #: its name in warnings and hooks ("memory", "disk", "redis")

    def get(self, key: Hashable) -> Any: ...
    def set(self, key: Hashable, value: object) -> None: ...
    def contains(self, key: Hashable) -> bool: ...  #: a fresh (unexpired) entry is stored
    def delete(self, key: Hashable) -> bool: ...  #: removed; whether a fresh one was there
    def clear(self) -> None: ...


@runtime_checkable
class AsyncStore(Store, Protocol):
    """A store with async calls of its own (disk: its I/O thread; Redis: its async client):
    async callers await them instead of running the blocking calls on a worker thread."""

    async def aget(self, key: Hashable) -> Any: ...
    async def aset(self, key: Hashable, value: object) -> None: ...


class SharedStore(AsyncStore, Protocol):
    """A store that other processes read too, with native async calls and leases."""

    shared: bool

    def lease(self, key: Hashable) -> str | None: ...
    def release(self, key: Hashable, token: str) -> None: ...
    def wait(self, key: Hashable) -> Any: ...
    async def alease(self, key: Hashable) -> str | None: ...
    async def arelease(self, key: Hashable, token: str) -> None: ...
    async def await_value(self, key: Hashable) -> Any: ...
