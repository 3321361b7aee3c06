"""A failing cache backend never fails the call and never loses its result."""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import pytest

from opero import OperoBackendWarning, opero


def _corrupt_all_values(directory: Path) -> int:
    db = sqlite3.connect(directory / "cache.db")
    with db:
        changed = db.execute(
            "UPDATE Cache SET value = ?, mode = 4", (b"\x80\x05not a pickle",)
        ).rowcount
    db.close()
    return changed


CALLS = [0]  # module-level: a closure's values are part of disk keys


def test_corrupt_disk_entry_runs_uncached_with_one_warning(tmp_path: Path) -> None:
    CALLS[0] = 0

    @opero(cache_backend="disk", cache_dir=tmp_path, retries=0)
    def f(x: int) -> dict[str, int]:
        CALLS[0] += 1
        return {"x": x, "calls": CALLS[0]}

    assert f(1) == {"x": 1, "calls": 1}
    assert _corrupt_all_values(tmp_path) == 1
    with pytest.warns(OperoBackendWarning, match="disk backend failed"):
        assert f(1) == {"x": 1, "calls": 2}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning within a minute would raise here
        assert f(2)["x"] == 2
        assert f(2)["x"] == 2
    assert CALLS[0] == 3  # f(2) cached as usual


def test_disk_cache_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    @opero(cache_backend="disk", cache_dir=blocker / "sub")
    def f(x: int) -> int:
        return x * 2

    with pytest.warns(OperoBackendWarning):
        assert f(4) == 8
    assert f(4) == 8
