"""What the disk cache trusts on disk, and how it writes there.

* Trust: the directory, and the files opero reads inside it (``cache.db`` and its
  companions, and the files of large values), must be owned by the current user and not
  writable by group or others, as ssh's StrictModes asks of its files.
* Integrity: every stored value ends with the CRC32 of its bytes (4 bytes, little-endian),
  checked on read, so a flipped bit is a miss, never a wrong value. CRC32 finds every error
  of up to 32 adjacent bits in a fraction of a microsecond on a small value; it does not
  stop someone who can write the files on purpose (the trust rule does that).
"""

from __future__ import annotations

import os
import stat
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "DB_FILES",
    "LOCK_SECONDS",
    "REST_SECONDS",
    "CorruptEntry",
    "DatabaseLocked",
    "UnsafeDirectory",
    "check_database_files",
    "check_owner_and_mode",
    "check_private",
    "default_cache_dir",
    "intact",
    "seal",
]

LOCK_SECONDS = 1.0  #: longest wait for another process's SQLite lock
REST_SECONDS = 5.0  #: a directory whose lock timed out is left alone this long
DB_FILES = ("cache.db", "cache.db-wal", "cache.db-shm", "cache.db-journal")
#: zlib.crc32 of any bytes followed by their own CRC32 (little-endian): the CRC residue
_RESIDUE = 0x2144DF1C
_crc32 = zlib.crc32


class UnsafeDirectory(OSError):
    """The cache directory, or a file opero reads in it, is not private to this user."""


class CorruptEntry(ValueError):
    """A stored entry is not what opero wrote (damaged or tampered with): read as a miss."""


class DatabaseLocked(TimeoutError):
    """Another process held the cache database's lock for longer than ``LOCK_SECONDS``."""


def default_cache_dir() -> Path:
    """The platform's user cache directory for opero."""
    from pathlib import Path

    import platformdirs

    return Path(platformdirs.user_cache_dir("opero", appauthor=False))


def seal(data: bytes) -> bytes:
    """``data`` followed by its CRC32."""
    return data + _crc32(data).to_bytes(4, "little")


def intact(sealed: bytes) -> bool:
    """Whether ``sealed`` still matches its CRC32 (one pass, nothing copied)."""
    return _crc32(sealed) == _RESIDUE


def check_owner_and_mode(what: str, info: os.stat_result) -> None:
    """Raise :class:`UnsafeDirectory` unless ``info`` is owned by this user and neither
    group nor others may write it."""
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UnsafeDirectory(
            f"opero disk cache {what} is owned by uid {info.st_uid}, not by this user "
            f"(uid {os.geteuid()}): refused, its entries could run code or be wrong"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(
            f"opero disk cache {what} is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):o}): refused; chmod go-w it to use it"
        )


def check_private(path: str) -> None:
    """Raise :class:`UnsafeDirectory` unless ``path`` (followed if a symlink) is a directory
    owned by this user that neither group nor others may write."""
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"opero disk cache {path!r} is not a directory")
    check_owner_and_mode(repr(path), info)


def check_database_files(path: str) -> None:
    """The directory's rule for ``cache.db`` and its companions (those that exist)."""
    for name in DB_FILES:
        full = os.path.join(path, name)
        try:
            info = os.stat(full)
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeDirectory(f"opero disk cache file {full!r} is not a regular file")
        check_owner_and_mode(f"file {full!r}", info)
