"""The disk store: persistent entries in a ``diskcache`` directory, shared by processes.

The directory is a trust boundary. Values are stored as bytes of the chosen serializer and
read back as bytes only: whatever a row claims to be, diskcache never unpickles it (with
``cache_serializer="json"`` nothing is ever unpickled). No file outside the directory is
read or deleted, whatever a row names. The directory is created ``0700``; an existing one
(or a symlink to one) that is not owned by the current user, or that group or others may
write, is refused (the call runs uncached, with a warning naming it and why). SQLite waits
at most ``LOCK_SECONDS`` for another process's lock, then the call goes on uncached.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from opero.cache.serialize import dumps, loads
from opero.cache.store import MISS

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["LOCK_SECONDS", "CorruptEntry", "DiskStore", "UnsafeDirectory", "default_cache_dir"]

LOCK_SECONDS = 1.0  #: longest wait for another process's SQLite lock
_disk_caches: dict[str, Any] = {}
_disk_lock = threading.Lock()


class UnsafeDirectory(OSError):
    """The cache directory is not private to this user: it is not used."""


class CorruptEntry(ValueError):
    """A stored row is not what opero writes (tampered or damaged): read as a miss."""


def default_cache_dir() -> Path:
    """The platform's user cache directory for opero."""
    from pathlib import Path

    import platformdirs

    return Path(platformdirs.user_cache_dir("opero", appauthor=False))


def check_private(path: str) -> None:
    """Raise :class:`UnsafeDirectory` unless ``path`` (followed if a symlink) is a directory
    owned by this user that neither group nor others may write."""
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"opero disk cache {path!r} is not a directory")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UnsafeDirectory(
            f"opero disk cache {path!r} is owned by uid {info.st_uid}, not by this user "
            f"(uid {os.geteuid()}): refused, its entries could run code or be wrong"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(
            f"opero disk cache {path!r} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o}): refused; chmod 700 it to use it"
        )


def _open_disk_cache(directory: Path) -> Any:
    """One shared ``diskcache.Cache`` per directory, created private (0700)."""
    path = os.path.realpath(os.path.expanduser(str(directory)))
    with _disk_lock:
        cache = _disk_caches.get(path)
        if cache is None:
            import diskcache

            if not os.path.lexists(path):
                os.makedirs(path, mode=0o700, exist_ok=True)
            check_private(path)
            cache = diskcache.Cache(path, timeout=LOCK_SECONDS, disk=_bytes_disk())
            _disk_caches[path] = cache
        return cache


def _bytes_disk() -> type:
    """A ``diskcache.Disk`` that stores and returns bytes only, inside its directory."""
    import diskcache
    from diskcache.core import MODE_BINARY, MODE_RAW

    class BytesDisk(diskcache.Disk):  # type: ignore[misc]
        def _inside(self, relative: str) -> str:
            root = os.path.realpath(self._directory)
            full = os.path.realpath(os.path.join(root, str(relative)))
            if os.path.commonpath([root, full]) != root or full == root:
                raise CorruptEntry(f"a row names a file outside the cache: {relative!r}")
            return full

        def get(self, key: Any, raw: bool) -> Any:
            if not raw:  # opero's keys are str: a pickled key is not ours
                raise CorruptEntry("a row holds a pickled key")
            return super().get(key, raw)

        def fetch(self, mode: int, filename: str, value: Any, read: bool) -> Any:
            if mode == MODE_RAW and isinstance(value, bytes | memoryview):
                return bytes(value)
            if mode == MODE_BINARY and not read and filename:
                with open(self._inside(filename), "rb") as reader:
                    return reader.read()
            raise CorruptEntry(f"a row of mode {mode} is not bytes written by opero")

        def remove(self, file_path: str) -> None:
            try:
                self._inside(file_path)
            except CorruptEntry:
                return  # never delete outside the cache directory
            super().remove(file_path)

    return BytesDisk


class DiskStore:
    """Persistent entries in a ``diskcache`` directory, shared by processes.

    Values are stored as bytes of the chosen serializer. Every entry of one function in one
    namespace carries the tag ``prefix`` so that :meth:`clear` removes exactly those. Opened
    lazily on first use; a directory refused once stays refused for this store.
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
        self._refused: UnsafeDirectory | None = None

    @property
    def location(self) -> str:
        """The directory, for warnings."""
        return str(self.directory or default_cache_dir())

    def _open(self) -> Any:
        if self._cache is None:
            if self._refused is not None:
                raise self._refused
            try:
                self._cache = _open_disk_cache(self.directory or default_cache_dir())
            except UnsafeDirectory as exc:
                self._refused = exc
                raise
        return self._cache

    def get(self, key: Hashable) -> Any:
        cache = self._cache if self._cache is not None else self._open()  # (no len() query)
        data = cache.get(key, default=MISS)
        if data is MISS:
            return MISS
        if not isinstance(data, bytes):
            raise CorruptEntry(f"a row holds {type(data).__name__}, not bytes")
        return loads(data, self.serializer)

    def set(self, key: Hashable, value: Any) -> None:
        data = dumps(value, self.serializer)
        self._open().set(key, data, expire=self.ttl, tag=self.prefix)

    def clear(self) -> None:
        self._open().evict(self.prefix)
