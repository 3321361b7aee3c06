"""One disk cache directory in this process (see :mod:`opero.cache.disk`): its
``diskcache.Cache``, opened and checked once, its rest after another process's lock timed
out, the read connection of each thread, and the I/O thread of its async callers.

opero reads rows itself (one ``SELECT`` on a connection per thread): only the bytes opero
wrote, intact (their CRC32 checked), come back; writes go through ``diskcache`` (its culling,
its value files), many in one transaction when they come from the I/O thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW

from opero.cache.disk_files import (
    LOCK_SECONDS,
    REST_SECONDS,
    CorruptEntry,
    DatabaseLocked,
    check_database_files,
    check_private,
    default_cache_dir,
    intact,
)
from opero.cache.disk_io import Entry, IoThread, Outcome, Read
from opero.cache.disk_sqlite import BoundedCache, BytesDisk, WrittenFiles
from opero.core.health import BackendDown

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["Location", "location"]

_SELECT = (
    "SELECT mode, filename, value FROM Cache WHERE key = ? AND raw = 1"
    " AND (expire_time IS NULL OR expire_time > ?)"
)
_locations: dict[str, Location] = {}
_locations_lock = threading.Lock()


class Location:
    """One cache directory in this process: its ``diskcache.Cache`` (opened once), its
    rest after a lock timed out, its per-thread read connections and its I/O thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.cache: BoundedCache | None = None
        self.disk: BytesDisk | None = None
        self.until = 0.0  #: resting until this time.monotonic() (0: not resting)
        self.local = threading.local()
        self.lock = threading.Lock()
        self.io: IoThread[Read | Entry] = IoThread(self.serve, "opero-disk-io")

    # ----- state ----------------------------------------------------------------------
    def resting(self) -> bool:
        until = self.until
        if until and time.monotonic() < until:
            return True
        self.until = 0.0
        return False

    def failed(self, exc: BaseException) -> BaseException:
        """The exception to raise for ``exc``; a lock that timed out starts a rest."""
        if isinstance(exc, DatabaseLocked):
            self.until = time.monotonic() + REST_SECONDS
            return exc
        locked = isinstance(exc, diskcache.Timeout) or (
            isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        )
        if not locked:
            return exc
        self.until = time.monotonic() + REST_SECONDS
        return DatabaseLocked(
            f"the cache database was locked by another process for over {LOCK_SECONDS:g} s"
        )

    def open(self) -> BoundedCache:
        """The ``diskcache.Cache``, opened (and checked) on first use."""
        if self.cache is not None:
            return self.cache
        with self.lock:
            if self.cache is not None:
                return self.cache
            if self.until and self.resting():
                raise BackendDown(self.path)
            path = self.path
            if not os.path.lexists(path):
                os.makedirs(path, mode=0o700, exist_ok=True)
            check_private(path)
            check_database_files(path)
            try:
                cache = BoundedCache(path, timeout=LOCK_SECONDS, disk=BytesDisk)
            except BaseException as exc:
                raise self.failed(exc) from None
            for name in ("cache.db", "cache.db-wal", "cache.db-shm"):
                try:  # whatever the umask: ours alone
                    os.chmod(os.path.join(path, name), 0o600)
                except OSError:
                    pass
            self.disk = cache.disk
            self.cache = cache
            return cache

    # ----- reading and writing (in the caller's thread, or on the I/O thread) -----------
    def connect(self) -> Callable[..., sqlite3.Cursor]:
        """This thread's connection for reads: diskcache's own connection of this thread
        (one per thread in all), taken once, so that a read does not pay diskcache's
        per-statement checks; a forked child takes its own again (see ``_after_fork``)."""
        execute: Callable[..., sqlite3.Cursor] = self.open()._con.execute
        self.local.execute = execute
        return execute

    def read(self, key: Hashable) -> bytes | None:
        """The intact stored bytes of ``key``, or MISS."""
        try:
            execute = self.local.execute
        except AttributeError:
            execute = self.connect()
        try:
            rows = execute(_SELECT, (key, time.time())).fetchall()
        except sqlite3.Error as exc:
            raise self.failed(exc) from None
        if not rows:
            return None
        ((mode, filename, data),) = rows
        if mode != MODE_RAW or type(data) is not bytes:
            data = self._read_file(mode, filename, data)
            if data is None:
                return None  # removed meanwhile (replaced or evicted)
        if not intact(data):
            raise CorruptEntry(
                f"checksum mismatch: the stored bytes ({len(data):,}) were damaged or are not "
                "what opero wrote"
            )
        return data

    def _read_file(self, mode: object, filename: object, data: object) -> bytes | None:
        """The bytes of a value stored in a file of its own (None: the file is gone)."""
        if mode != MODE_BINARY or data is not None or not isinstance(filename, str):
            raise CorruptEntry(f"a row of mode {mode!r} is not bytes written by opero")
        assert self.disk is not None
        try:
            return self.disk.read_file(filename)
        except FileNotFoundError:
            return None

    def write(self, items: list[Entry]) -> list[BaseException | None]:
        """Store entries in one transaction: per item, None or
        the error of its value's file. If the transaction fails, nothing is stored, the
        files it wrote are removed, and its error is raised."""
        cache = self.open()
        results: list[BaseException | None] = []
        with WrittenFiles() as files:
            try:
                with cache.transact():
                    for key, data, expire, tag in items:
                        try:
                            cache.set(key, data, expire=expire, tag=tag)
                        except OSError as exc:  # its file: already removed by BytesDisk
                            results.append(exc)
                        else:
                            results.append(None)
            except BaseException as exc:
                assert self.disk is not None
                for name in files:
                    self.disk.remove(name)
                self._end_transaction(cache)
                error = self.failed(exc)
                if error is exc:
                    raise
                raise error from exc
        return results

    def delete(self, key: Hashable) -> bool:
        """Remove ``key``'s row and its value file: whether a fresh entry was there."""
        cache = self.open()
        try:
            return bool(cache.delete(key, retry=False))
        except BaseException as exc:
            self._end_transaction(cache)
            error = self.failed(exc)
            if error is exc:
                raise
            raise error from exc

    @staticmethod
    def _end_transaction(cache: BoundedCache) -> None:
        """Never leave this thread's connection inside a failed transaction."""
        try:
            con = cache._con
            if con.in_transaction:
                con.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    def serve(self, jobs: list[Read | Entry]) -> list[Outcome]:
        """The I/O thread's batch: the lookups, one by one, then the stores, in one
        transaction."""
        if self.until and self.resting():
            down = BackendDown(self.path)
            return [(False, down)] * len(jobs)
        outcomes: list[Outcome] = [(True, None)] * len(jobs)
        entries: list[Entry] = []
        stores: list[int] = []
        for n, job in enumerate(jobs):
            if type(job) is Entry:
                entries.append(job)
                stores.append(n)
            else:
                outcomes[n] = self._outcome(job.key)
        if stores:
            self._write_all(entries, stores, outcomes)
        return outcomes

    def _outcome(self, key: Hashable) -> Outcome:
        try:
            return (True, self.read(key))
        except Exception as exc:
            return (False, exc)

    def _write_all(self, entries: list[Entry], stores: list[int], outcomes: list[Outcome]) -> None:
        """Write ``entries`` (the jobs at ``stores``), each failure its job's outcome."""
        try:
            errors = self.write(entries)
        except Exception as exc:
            errors = [exc] * len(stores)
        for n, error in zip(stores, errors, strict=True):
            if error is not None:
                outcomes[n] = (False, error)


def location(directory: Path | None) -> Location:
    """The :class:`Location` of ``directory`` (resolved) in this process."""
    path = os.path.realpath(os.path.expanduser(str(directory or default_cache_dir())))
    with _locations_lock:
        found = _locations.get(path)
        if found is None:
            found = _locations[path] = Location(path)
        return found


def _after_fork() -> None:
    """A forked child starts without connections, locks held or I/O threads."""
    global _locations_lock  # noqa: PLW0603 - another thread may have held it at the fork
    _locations_lock = threading.Lock()
    for found in _locations.values():
        found.local = threading.local()
        found.lock = threading.Lock()
        found.io = IoThread(found.serve, "opero-disk-io")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
