"""The disk store: persistent entries in a ``diskcache`` directory, shared by processes.

The directory is a trust boundary. Values are stored as bytes of the chosen serializer
followed by their CRC32, and read back by opero itself as bytes only: whatever a row claims
to be, nothing is unpickled unless it is the bytes opero wrote, intact (with
``cache_serializer="json"`` nothing is ever unpickled); a damaged value is a miss, reported.
No file outside the directory is read or deleted, whatever a row names. The directory is
created ``0700``; an existing one (or a symlink to one) that is not owned by the current
user, or that group or others may write, is refused, and so is a ``cache.db`` (or a
companion, or a value file) inside it that breaks the same rule (the call runs uncached,
with a warning naming it and why).

No operation waits more than about ``LOCK_SECONDS`` for another process's SQLite lock, the
first open of the directory included; a directory that timed out is then left alone for
``REST_SECONDS`` (its calls run uncached at once) and used again by itself afterwards.
Async callers never touch the disk: their reads and writes run on the directory's I/O
thread (:mod:`opero.cache.disk_io`), where concurrent stores share one transaction.

This module stays light (no ``sqlite3``, no ``diskcache``) until the store is first used.
"""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from opero.cache.disk_files import (
    LOCK_SECONDS,
    REST_SECONDS,
    CorruptEntry,
    UnsafeDirectory,
    default_cache_dir,
    seal,
)
from opero.cache.disk_io import Entry, Read
from opero.cache.serialize import dumps, loads
from opero.cache.store import MISS
from opero.core.health import BackendDown

if TYPE_CHECKING:
    from pathlib import Path

    from opero.cache.disk_location import Location
    from opero.cache.disk_sqlite import BoundedCache

__all__ = [
    "LOCK_SECONDS",
    "REST_SECONDS",
    "CorruptEntry",
    "DiskStore",
    "UnsafeDirectory",
    "default_cache_dir",
]


class DiskStore:
    """Persistent entries in a ``diskcache`` directory, shared by processes.

    Every entry of one function in one namespace carries the tag ``prefix`` so that
    :meth:`clear` removes exactly those. Opened lazily on first use; a directory refused
    once stays refused for this store.
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
        self._decode = pickle.loads if serializer == "pickle" else self._decode_other
        self._loc: Location | None = None
        self._refused: UnsafeDirectory | None = None

    @property
    def location(self) -> str:
        """The directory, for warnings."""
        return str(self.directory or default_cache_dir())

    def _location(self) -> Location:
        if self._refused is not None:
            raise self._refused
        if self._loc is None:
            from opero.cache.disk_location import location

            self._loc = location(self.directory)
        return self._loc

    def _open(self) -> BoundedCache:
        loc = self._location()
        try:
            return loc.open()
        except UnsafeDirectory as exc:
            self._refused = exc
            raise

    def _decode_other(self, data: bytes) -> Any:
        return loads(data[:-4], self.serializer)

    def _opened(self) -> Location:
        """The location, opened, unless it rests (BackendDown)."""
        loc = self._loc
        if loc is None or loc.cache is None:
            self._open()
            loc = self._loc
            assert loc is not None
        if loc.until and loc.resting():
            raise BackendDown(loc.path)
        return loc

    def get(self, key: Hashable) -> Any:
        data = self._opened().read(key)
        return MISS if data is None else self._decode(data)

    def contains(self, key: Hashable) -> bool:
        """Whether ``key`` has a fresh entry, intact (its bytes checked, never decoded)."""
        return self._opened().read(key) is not None

    def delete(self, key: Hashable) -> bool:
        return self._opened().delete(key)

    def set(self, key: Hashable, value: object) -> None:
        data = seal(dumps(value, self.serializer))
        self._open()
        loc = self._loc
        assert loc is not None
        if loc.until and loc.resting():
            raise BackendDown(loc.path)
        (error,) = loc.write([Entry(key, data, self.ttl, self.prefix)])
        if error is not None:
            raise error

    async def aget(self, key: Hashable) -> Any:
        loc = self._loc
        if loc is None or loc.cache is None or loc.until:
            loc = await self._ready()
        data = await loc.io.submit(Read(key))
        return MISS if data is None else self._decode(data)

    async def aset(self, key: Hashable, value: object) -> None:
        data = seal(dumps(value, self.serializer))
        loc = self._loc
        if loc is None or loc.cache is None or loc.until:
            loc = await self._ready()
        await loc.io.submit(Entry(key, data, self.ttl, self.prefix))

    async def _ready(self) -> Location:
        """The location, opened (and checked) off the event loop: resolving and checking
        the directory touch the disk."""
        if self._refused is not None:
            raise self._refused
        loc = self._loc
        if loc is not None and loc.until and loc.resting():
            raise BackendDown(loc.path)
        if loc is None or loc.cache is None:  # (never its truth value: it counts rows)
            await asyncio.to_thread(self._open)
            loc = self._loc
            assert loc is not None
        return loc

    def clear(self) -> None:
        self._open().evict(self.prefix)
