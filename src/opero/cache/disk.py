"""The disk store: persistent entries in a ``diskcache`` directory, shared by processes."""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from opero.cache.serialize import dumps, loads
from opero.cache.store import MISS

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["DiskStore", "default_cache_dir"]


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
