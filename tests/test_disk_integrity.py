"""The disk cache read back from damaged or planted files: a flipped bit is a miss with a
warning (never a wrong value), a database file that another user owns or that others may
write is refused even inside a private directory, and a full disk leaves nothing behind.

The entries are written by another real process (as they are in use), so this process
opens the directory fresh, as a later run of a program would.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from opero import OperoBackendWarning, opero

ROOT = Path(__file__).resolve().parents[1]
CALLS: list[int] = []  # module state: not part of the disk key
PAYLOAD: list[object] = ["fresh"]
RAN: list[str] = []


def value_of(x: int) -> int:
    CALLS.append(x)
    return 1234567


def served(x: int) -> object:
    return PAYLOAD[0]


def _ran(what: str) -> None:
    RAN.append(what)


class Planted:
    """Unpickling this runs code (it records that it ran)."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_ran, ("code ran",))


def plant(directory: str) -> None:
    """Run in another process: store a value that runs code when it is unpickled."""
    PAYLOAD[0] = Planted()
    opero(cache_backend="disk", cache_dir=directory)(served)(1)


def fill(directory: str) -> None:
    opero(cache_backend="disk", cache_dir=directory)(value_of)(1)


def _in_another_process(call: str, directory: Path) -> None:
    code = f"import tests.test_disk_integrity as t; t.{call}({str(directory)!r})"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    with sqlite3.connect(directory / "cache.db") as db:  # everything into cache.db itself
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def test_a_flipped_bit_in_cache_db_is_a_miss_with_a_warning(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    _in_another_process("fill", cache)
    raw = (cache / "cache.db").read_bytes()
    # the pickled int: opcode J, then 4 bytes little-endian (1234567 = 0x0012D687)
    at = raw.index(b"J\x87\xd6\x12\x00")
    damaged = bytearray(raw)
    damaged[at + 3] ^= 0x01  # 1234567 + 65536 = 1300103
    (cache / "cache.db").write_bytes(bytes(damaged))
    CALLS.clear()
    f = opero(cache_backend="disk", cache_dir=cache)(value_of)
    with pytest.warns(OperoBackendWarning, match="disk backend failed") as caught:
        assert f(1) == 1234567  # recomputed: never 1300103
    assert CALLS == [1]
    assert any("checksum" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1) == 1234567  # the entry was written again, and is read back
    assert CALLS == [1]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
@pytest.mark.parametrize("how", ["owned by another user", "writable by others"])
def test_a_planted_database_file_is_refused_in_a_private_directory(
    tmp_path: Path, how: str
) -> None:
    cache = tmp_path / "cache"
    _in_another_process("plant", cache)
    assert cache.stat().st_mode & 0o777 == 0o700  # the directory itself passes
    database = cache / "cache.db"
    if how == "owned by another user":
        os.chown(database, 65534, 65534)
        expected = "owned by uid 65534"
    else:
        database.chmod(0o666)
        expected = "writable by group or others"
    RAN.clear()
    PAYLOAD[0] = "fresh"
    f = opero(cache_backend="disk", cache_dir=cache)(served)
    with pytest.warns(OperoBackendWarning, match=expected) as caught:
        assert f(1) == "fresh"
    assert RAN == []  # the planted pickle never ran
    assert "cache.db" in str(caught[0].message)


# ----- a full disk ------------------------------------------------------------------------
BIG = 100_000  # stored as a file of its own, next to cache.db


def big(x: int) -> bytes:
    return bytes([x % 251]) * BIG


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 1 MiB file system (tmpfs), so that writes really fail with ENOSPC."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_leaves_no_empty_files_or_directories(small_disk: Path) -> None:
    cache = small_disk / "cache"
    f = opero(cache_backend="disk", cache_dir=cache)(big)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for x in range(40):  # 4 MB into 1 MiB: most writes fail
            assert f(x) == big(x)
    assert any(issubclass(w.category, OperoBackendWarning) for w in caught)
    with sqlite3.connect(cache / "cache.db") as db:
        named = {name for (name,) in db.execute("SELECT filename FROM Cache") if name}
    db.close()
    assert named, "some values fit"
    empty_dirs, stray = [], []
    for where, dirs, files in os.walk(cache):
        for d in dirs:
            if not os.listdir(os.path.join(where, d)):
                empty_dirs.append(d)
        for name in files:
            relative = os.path.relpath(os.path.join(where, name), cache)
            if not relative.startswith("cache.db") and relative not in named:
                stray.append((relative, os.path.getsize(os.path.join(where, name))))
    assert empty_dirs == []
    assert stray == []  # no empty or partial file that no entry names
    for x in range(40):  # what was stored is still served
        assert f(x) == big(x)
