"""The disk cache is a trust boundary, tested by tampering with a real cache
directory: no code runs, no value is wrong, nothing outside the directory is read or
deleted, unsafe directories are refused, and a held SQLite lock costs about a second."""

from __future__ import annotations

import asyncio
import os
import pickle
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from opero import OperoBackendWarning, opero
from opero.core import health

RAN: list[str] = []


class Boom:
    """Unpickling this runs code: it records that it ran."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (RAN.append, ("code ran",))


def _rows(cache_dir: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(cache_dir / "cache.db") as db:
        return list(db.execute("SELECT rowid, key, mode, filename, value FROM Cache"))


def _tamper(cache_dir: Path, sql: str, params: tuple[object, ...]) -> None:
    with sqlite3.connect(cache_dir / "cache.db") as db:
        db.execute(sql, params)


@pytest.fixture(autouse=True)
def _fresh_health() -> None:
    health.reset()
    RAN.clear()


CALLS: list[int] = []  # module-level: a closure's values are part of disk keys


@pytest.mark.parametrize("serializer", ["json", "pickle"])
def test_a_row_claiming_to_be_a_pickle_is_never_unpickled(tmp_path: Path, serializer) -> None:
    calls = CALLS
    calls.clear()

    @opero(cache_backend="disk", cache_dir=tmp_path, cache_serializer=serializer)
    def answer(x: int) -> dict[str, int]:
        CALLS.append(x)
        return {"x": x}

    assert answer(1) == {"x": 1}
    (rowid, *_rest) = _rows(tmp_path)[0]
    # MODE_PICKLE = 4: diskcache itself would unpickle this row on a plain read
    _tamper(
        tmp_path,
        "UPDATE Cache SET mode = 4, value = ? WHERE rowid = ?",
        (pickle.dumps(Boom()), rowid),
    )
    with pytest.warns(OperoBackendWarning, match="disk backend failed"):
        assert answer(1) == {"x": 1}  # recomputed: a miss, never the tampered value
    assert RAN == []
    assert calls == [1, 1]
    assert answer(1) == {"x": 1}  # the rewritten row is good again
    assert calls == [1, 1]


def test_json_serializer_never_unpickles_raw_bytes(tmp_path: Path) -> None:
    @opero(cache_backend="disk", cache_dir=tmp_path, cache_serializer="json")
    def answer(x: int) -> list[int]:
        return [x]

    answer(2)
    (rowid, *_rest) = _rows(tmp_path)[0]
    _tamper(tmp_path, "UPDATE Cache SET value = ? WHERE rowid = ?", (pickle.dumps(Boom()), rowid))
    with pytest.warns(OperoBackendWarning):
        assert answer(2) == [2]
    assert RAN == []


def test_rows_naming_files_outside_the_directory(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"do not read or delete me")

    @opero(cache_backend="disk", cache_dir=cache, cache_serializer="json")
    def answer(x: int) -> str:
        return "fresh"

    answer(1)
    (rowid, *_rest) = _rows(cache)[0]
    # MODE_BINARY = 2: the value lives in the named file
    _tamper(
        cache,
        "UPDATE Cache SET mode = 2, filename = ?, value = NULL WHERE rowid = ?",
        ("../precious.txt", rowid),
    )
    with pytest.warns(OperoBackendWarning):
        assert answer(1) == "fresh"
    answer.cache_clear()
    _tamper(
        cache,
        "UPDATE Cache SET mode = 2, filename = ?, value = NULL",
        (str(outside),),
    )
    answer.cache_clear()
    assert outside.read_bytes() == b"do not read or delete me"


def test_world_writable_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    calls = CALLS
    calls.clear()

    @opero(cache_backend="disk", cache_dir=shared)
    def f(x: int) -> int:
        CALLS.append(x)
        return x

    with pytest.warns(OperoBackendWarning, match="writable by group or others") as caught:
        assert f(1) == 1
    assert caught[0].filename == __file__  # the warning points at the user's call
    assert "test_world_writable_directory_is_refused.<locals>.f" in str(caught[0].message)
    assert f(1) == 1
    assert calls == [1, 1]  # uncached, never failing
    assert not (shared / "cache.db").exists()
    link = tmp_path / "link"
    link.symlink_to(shared)
    health.reset()
    with pytest.warns(OperoBackendWarning, match=str(shared)):
        opero(cache_backend="disk", cache_dir=link)(lambda x: x)(1)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)

    @opero(cache_backend="disk", cache_dir=theirs)
    def f(x: int) -> int:
        return x

    with pytest.warns(OperoBackendWarning, match="owned by uid 65534"):
        assert f(3) == 3


def test_new_directory_is_private(tmp_path: Path) -> None:
    target = tmp_path / "new" / "cache"
    opero(cache_backend="disk", cache_dir=target)(lambda: 1)()
    assert target.stat().st_mode & 0o777 == 0o700


HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold_lock(cache: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(cache / "cache.db"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_held_sqlite_lock_costs_about_a_second(tmp_path: Path) -> None:
    @opero(cache_backend="disk", cache_dir=tmp_path)
    def f(x: int) -> int:
        return x * 3

    f(0)  # the directory and database exist
    proc = _hold_lock(tmp_path, 30)
    try:
        start = time.monotonic()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OperoBackendWarning)
            assert f(1) == 3
        assert time.monotonic() - start < 5  # the first build waited 75 s here
    finally:
        proc.kill()
        proc.wait()


def test_async_disk_io_never_blocks_the_event_loop(tmp_path: Path) -> None:
    @opero(cache_backend="disk", cache_dir=tmp_path)
    async def f(x: int) -> int:
        return x * 3

    asyncio.run(f(0))
    proc = _hold_lock(tmp_path, 30)

    async def main() -> tuple[int, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        value = await f(1)
        task.cancel()
        return value, ticks

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OperoBackendWarning)
            value, ticks = asyncio.run(main())
    finally:
        proc.kill()
        proc.wait()
    assert value == 3
    assert ticks >= 20  # the loop ran while the lookup waited on the lock
