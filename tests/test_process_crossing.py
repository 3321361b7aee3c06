"""Items and results that cannot cross the process boundary fail their own item once.

An item that pickles in the caller but cannot be unpickled in the worker (a class defined
under the ``__main__`` guard of a script run with spawn, a ``__setstate__`` that raises), and a
result that cannot be pickled in the worker, fail that item with an ``UnpicklableError``
naming its type, not retried, and the rest of the map goes on, with at most one worker
replaced. Real scripts and real worker processes; every run of the function is logged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import pytest

from opero import OperomapError, WorkerCrashedError, operomap
from opero.errors import UnpicklableError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SCRIPT = textwrap.dedent(
    """
    import json, multiprocessing, os, sys
    from opero import operomap

    class RefusesToLoad:
        '''Pickles in the caller; loading it anywhere raises.'''
        def __getstate__(self):
            return {"x": 1}
        def __setstate__(self, state):
            raise RuntimeError("this object refuses to be loaded")

    @operomap(mode="process", workers=2, cache=False, progress=False, retries=3,
              min_delay=0, return_exceptions=True)
    def describe(item):
        with open(sys.argv[2], "a") as log:
            log.write(f"{os.getpid()} {type(item).__name__}\\n")
        return type(item).__name__

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[1])

        class GuardedLocal:  # spawn workers cannot import this class
            pass

        items = [1, 2, GuardedLocal(), 4, RefusesToLoad()] + list(range(5, 60))
        out = describe(items)
        print(json.dumps([
            [type(r).__name__, str(r), getattr(r, "__notes__", [])]
            if isinstance(r, Exception) else r for r in out
        ]))
    """
)


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_an_item_the_worker_cannot_load_fails_alone_without_respawning(
    tmp_path: Path, method: str
) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    log = tmp_path / "runs"
    out = subprocess.run(
        [sys.executable, str(script), method, str(log)],
        capture_output=True,
        text=True,
        timeout=120,  # the first build respawned workers here until killed
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    assert len(results) == 60
    failed = {i for i, r in enumerate(results) if isinstance(r, list)}
    # the guarded class loads in a forked worker (it has the caller's memory), not in spawn
    assert failed == ({2, 4} if method == "spawn" else {4}), results
    for i in failed:
        kind, message, notes = results[i]
        assert kind == "UnpicklableError"
        name = "GuardedLocal" if i == 2 else "RefusesToLoad"
        assert name in message and "worker" in message
        assert any(str(i) in note for note in notes)
    if method == "fork":
        assert results[2] == "GuardedLocal"
    ran = [line.split() for line in log.read_text().splitlines()]
    # every other item ran exactly once; the failing ones never reached the function
    assert len(ran) == 60 - len(failed)
    # no endless respawn: the two workers, and at most one replacement per failing item
    assert len({pid for pid, _ in ran}) <= 2 + len(failed)


class Unsendable:
    """A result holding a lock: it cannot be pickled to go back to the caller."""

    def __init__(self) -> None:
        self.lock = threading.Lock()


def returns_unsendable(job: tuple[str, int]) -> object:
    log, x = job
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return Unsendable() if x == 7 else x


@pytest.mark.parametrize("warm", [False, True])
def test_a_result_that_cannot_be_sent_back_fails_once_without_retry(
    tmp_path: Path, warm: bool
) -> None:
    log = tmp_path / "runs"
    mapped = operomap(
        mode="process", workers=2, cache=False, progress=False, retries=3, min_delay=0
    )(returns_unsendable)
    if warm:  # measured first: the item travels in a batch of several
        mapped([(str(log) + ".warm", i) for i in range(100, 400)])
    with pytest.raises(OperomapError) as info:
        mapped([(str(log), i) for i in range(20)])
    results = info.value.results
    error = results[7]
    assert isinstance(error, UnpicklableError), repr(error)
    assert "Unsendable" in str(error) and "result" in str(error)
    assert [r for i, r in enumerate(results) if i != 7] == [i for i in range(20) if i != 7]
    runs = Counter(int(line) for line in log.read_text().split())
    assert runs[7] == 1, "an unpicklable result was retried"
    assert all(runs[i] == 1 for i in range(20)), runs
    assert os.getpid()  # the caller is unharmed


class KillsOnLoad:
    """Loading it in a worker process ends that process (like a crashing C extension)."""

    def __init__(self, caller: int) -> None:
        self.caller = caller

    def __getstate__(self) -> dict[str, int]:
        return {"caller": self.caller}

    def __setstate__(self, state: dict[str, int]) -> None:
        if os.getpid() != state["caller"]:
            os._exit(3)
        self.caller = state["caller"]


def logged_kind(job: tuple[str, int, object]) -> int:
    log, x, _payload = job
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return x


def test_an_item_that_kills_the_worker_while_loading_fails_alone(tmp_path: Path) -> None:
    log = tmp_path / "runs"
    mapped = operomap(mode="process", workers=2, cache=False, progress=False, retries=0)(
        logged_kind
    )
    mapped([(str(log) + ".warm", i, None) for i in range(300)])  # measured: batches of many
    items: list[tuple[str, int, object]] = [(str(log), i, None) for i in range(200)]
    items[120] = (str(log), 120, KillsOnLoad(os.getpid()))
    with pytest.raises(OperomapError) as info:
        mapped(items)
    results = info.value.results
    assert isinstance(results[120], WorkerCrashedError), repr(results[120])
    assert [r for i, r in enumerate(results) if i != 120] == [i for i in range(200) if i != 120]
    runs = Counter(int(line) for line in log.read_text().split())
    assert 120 not in runs and all(runs[i] == 1 for i in range(200) if i != 120), runs


def _load_outside(caller: int) -> LoadsOnlyOutside:
    if os.getpid() == caller:
        raise RuntimeError("this value cannot be loaded in the caller")
    return LoadsOnlyOutside(caller)


class LoadsOnlyOutside:
    """A result that pickles in the worker but cannot be unpickled in the caller."""

    def __init__(self, caller: int) -> None:
        self.caller = caller

    def __reduce__(self) -> tuple[object, ...]:
        return (_load_outside, (self.caller,))


def returns_unloadable(job: tuple[str, int, int]) -> object:
    log, x, caller = job
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return LoadsOnlyOutside(caller) if x == 3 else x


def test_a_result_the_caller_cannot_load_fails_once_without_retry(tmp_path: Path) -> None:
    log = tmp_path / "runs"
    mapped = operomap(
        mode="process", workers=2, cache=False, progress=False, retries=3, min_delay=0
    )(returns_unloadable)
    with pytest.raises(OperomapError) as info:
        mapped([(str(log), i, os.getpid()) for i in range(8)])
    error = info.value.results[3]
    assert isinstance(error, UnpicklableError), repr(error)
    assert "result of the item (tuple)" in str(error)
    assert "cannot be unpickled here" in str(error)
    assert isinstance(error.__cause__, RuntimeError)
    runs = Counter(int(line) for line in log.read_text().split())
    assert runs[3] == 1, "a result the caller cannot load was retried"


GUARDED_METHOD = textwrap.dedent(
    """
    import multiprocessing, sys
    from opero import operomap

    if __name__ == "__main__":
        multiprocessing.set_start_method("spawn")

        class Guarded:  # a spawn worker cannot import it, so cannot load its bound method
            def run(self, x):
                return x

        mapped = operomap(mode="process", workers=2, cache=False, progress=False, retries=2,
                          min_delay=0, return_exceptions=True)(Guarded().run)
        print(*sorted({type(r).__name__ for r in mapped(range(6))}))
    """
)


def test_a_function_the_spawned_worker_cannot_load_fails_its_items(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(GUARDED_METHOD)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["UnpicklableError"]  # at once: the first build respawned
