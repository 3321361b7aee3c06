"""The ``diskcache`` pieces the disk store uses, made safe.

* :class:`BoundedCache`: the first open of a cache waits at most ``LOCK_SECONDS`` for
  another process's lock (diskcache itself retries its set-up statements for 60 seconds).
* :class:`BytesDisk`: stores bytes only, and reads and deletes nothing outside its
  directory; value files are created ``0600`` in ``0700`` directories whatever the umask,
  and a write that fails (a full disk) leaves no file or directory behind.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from typing import Any

import diskcache

from opero.cache.disk_files import (
    LOCK_SECONDS,
    CorruptEntry,
    DatabaseLocked,
    check_owner_and_mode,
)

__all__ = ["BoundedCache", "BytesDisk", "WrittenFiles"]


class _OpenLocked(sqlite3.OperationalError):
    """Stops diskcache's own 60-second retry loops (they retry only 'database is locked')."""


class BoundedCache(diskcache.Cache):  # type: ignore[misc]
    """A ``diskcache.Cache`` whose opening waits at most ``LOCK_SECONDS`` for a lock
    (diskcache retries its set-up statements for 60 seconds)."""

    def __init__(self, directory: str, **settings: Any) -> None:
        self._deadline: float | None = time.monotonic() + LOCK_SECONDS
        try:
            super().__init__(directory, **settings)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.close()  # this thread's connection, the only one opened so far
            if isinstance(exc, _OpenLocked):
                raise DatabaseLocked(
                    f"the cache database was locked by another process for over {LOCK_SECONDS:g} s"
                ) from None
            raise
        finally:
            self._deadline = None

    @property
    def _sql(self) -> Any:
        execute = self._con.execute
        deadline = self._deadline
        if deadline is None:
            return execute

        def bounded(*args: Any, **kwargs: Any) -> Any:
            try:
                return execute(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if str(exc) == "database is locked" and time.monotonic() > deadline:
                    raise _OpenLocked("the cache database is locked") from None
                raise

        return bounded


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
#: the value files the current thread wrote (while a write is tracked)
_written = threading.local()


class BytesDisk(diskcache.Disk):  # type: ignore[misc]
    """A ``diskcache.Disk`` that stores bytes only and reads nothing outside its directory;
    opero reads rows itself (see :mod:`opero.cache.disk`)."""

    def inside(self, relative: str) -> str:
        """The full path of a value file named by a row, if it lies inside the cache."""
        root = os.path.realpath(self._directory)
        full = os.path.realpath(os.path.join(root, str(relative)))
        if os.path.commonpath([root, full]) != root or full == root:
            raise CorruptEntry(f"a row names a file outside the cache: {str(relative)[:200]!r}")
        return full

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:  # opero's keys are str: a pickled key is not ours
            raise CorruptEntry("a row holds a pickled key")
        return super().get(key, raw)

    def fetch(self, mode: int, filename: str, value: Any, read: bool) -> Any:
        raise CorruptEntry("opero reads its rows itself")  # never diskcache's unpickling

    def store(self, value: Any, read: bool, key: Any = None) -> Any:
        if type(value) is not bytes:
            raise TypeError(f"opero stores bytes, not {type(value).__name__}")
        stored = super().store(value, read, key=key)
        files = getattr(_written, "files", None)
        if files is not None and stored[2]:
            files.append(stored[2])
        return stored

    def _write(self, full_path: str, iterator: Any, mode: str, encoding: Any = None) -> int:
        """The value's file, ``0600`` in ``0700`` directories; nothing left if it fails."""
        directory = os.path.dirname(full_path)
        for attempt in range(10):
            try:
                os.makedirs(directory, mode=0o700, exist_ok=True)
                fd = os.open(full_path, _CREATE, 0o600)
                break
            except FileNotFoundError:  # another process pruned the directory meanwhile
                if attempt == 9:
                    self._prune(directory)
                    raise
            except BaseException:
                self._prune(directory)
                raise
        size = 0
        try:
            with os.fdopen(fd, "wb") as writer:
                for chunk in iterator:
                    size += len(chunk)
                    writer.write(chunk)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(full_path)
            self._prune(directory)
            raise
        return size

    def remove(self, file_path: str) -> None:
        try:
            full = self.inside(file_path)
        except CorruptEntry:
            return  # never delete outside the cache directory
        with contextlib.suppress(OSError):
            os.remove(full)
        self._prune(os.path.dirname(full))

    def _prune(self, directory: str) -> None:
        """Remove ``directory`` and its parents while they are empty, up to the cache."""
        root = os.path.realpath(self._directory)
        directory = os.path.realpath(directory)
        while directory != root and os.path.commonpath([root, directory]) == root:
            try:
                os.rmdir(directory)
            except OSError:
                return
            directory = os.path.dirname(directory)

    def read_file(self, relative: str) -> bytes:
        """The bytes of a value file, held to the directory's rule."""
        with open(self.inside(relative), "rb") as reader:
            check_owner_and_mode(f"value file {relative[:200]!r}", os.fstat(reader.fileno()))
            return reader.read()


class WrittenFiles:
    """``with WrittenFiles() as files``: collect the value files this thread writes, to
    remove them if the write is rolled back."""

    def __enter__(self) -> list[str]:
        files: list[str] = []
        _written.files = files
        return files

    def __exit__(self, *exc: object) -> None:
        _written.files = None
