"""The worker process's side: load the function, then run the batches the caller sends.

The worker ends when the caller says so (an empty message), when its pipe breaks, and soon
after the caller's process dies (:mod:`opero.maps.parent_watch`). A batch is loaded
here, not in the pipe's reader: a batch that pickles in the caller but cannot be loaded in
the worker (a class defined in the caller's ``__main__`` under spawn, a failing
``__setstate__``) is answered with :class:`Unreadable`, and the caller fails only what it
held; the worker goes on. It marks the batch begun before loading it, so a worker that dies
while loading is known to have died on that batch.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import NamedTuple

from opero.core.callables import is_async_callable
from opero.errors import UnpicklableError
from opero.maps.attempts import portable_results, run_segments
from opero.maps.parent_watch import watch_parent
from opero.maps.records import Function, Results, Segment
from opero.maps.spill_layout import Part, SharedBuffer
from opero.maps.spill_writer import SpillWriter, run_spilled
from opero.maps.targets import ByValue, FunctionRef

__all__ = ["Unreadable", "serve"]


class Unreadable:
    """The worker's answer to a batch it could not load: why, as text (always picklable)."""

    __slots__ = ("reason", "tb")

    def __init__(self, reason: str, tb: str) -> None:
        self.reason = reason
        self.tb = tb

    def __reduce__(self) -> tuple[object, ...]:
        return (Unreadable, (self.reason, self.tb))


class Loaded(NamedTuple):
    """The function a worker runs, or why it cannot (then every attempt fails with it)."""

    fn: Function | None
    concurrent: bool  # an async function: a batch's attempts all start at once
    error: Exception | None


def serve(
    conn: Connection,
    ref: FunctionRef | ByValue | bytes,
    raw: SharedBuffer,
    caller: int,
) -> None:
    """The worker's main loop (``ref`` pickled under spawn and forkserver, so that a function
    the worker cannot load fails its attempts instead of the process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller handles Ctrl-C and ends us
    watch_parent(caller)
    spill = SpillWriter(raw)
    loaded = _load(ref)

    def send(message: object) -> None:
        try:
            conn.send(message)
        except OSError:  # the caller is gone, or ending this worker
            os._exit(0)

    while (data := _next_batch(conn)) is not None:
        spill.begin(loading=True)
        try:
            batch = pickle.loads(data)
        except Exception as exc:
            send(Unreadable(f"{type(exc).__qualname__}: {exc}", traceback.format_exc()))
            continue
        finally:
            del data
        spill.loaded(all_started=loaded.concurrent)
        if spill.pause[0] > 0.0:
            spill.wait_pause()
        results = _run(loaded, batch, spill, send)
        del batch
        _answer(conn, results, loaded.fn, send)


def _load(ref: FunctionRef | ByValue | bytes) -> Loaded:
    name = multiprocessing.current_process().name.removeprefix("opero-worker:")
    try:
        target = pickle.loads(ref) if isinstance(ref, bytes) else ref
        fn = target.resolve()
    except Exception as exc:
        return Loaded(
            None,
            False,
            UnpicklableError(
                f"the worker process cannot load {name}: {exc!r}; a process mode needs a "
                "function defined at module level in an importable module (or in a script "
                "under `if __name__ == '__main__':` guards)"
            ),
        )
    return Loaded(fn, is_async_callable(fn), None)


def _next_batch(conn: Connection) -> bytes | None:
    """The next batch, pickled (None: the caller asked this worker to stop, or is gone)."""
    try:
        data = conn.recv_bytes()
    except (EOFError, OSError):
        return None
    return data or None  # empty: asked to stop


def _run(
    loaded: Loaded, batch: list[Segment], spill: SpillWriter, send: Callable[[Part], None]
) -> Results:
    n = sum(len(segment[0]) for segment in batch)
    fn = loaded.fn
    if fn is None:
        assert loaded.error is not None
        return [None] * n, dict.fromkeys(range(n), (loaded.error, None))
    if n == 1:  # alone: if the worker dies now, it is this attempt
        return run_segments(fn, batch)
    if loaded.concurrent:
        return run_segments(fn, batch, spill.add)
    return run_spilled(fn, batch, spill, send)


def _answer(
    conn: Connection,
    results: Results,
    fn: Function | None,
    send: Callable[[object], None],
) -> None:
    if results[1]:
        # an exception must survive the round trip: check failures here
        values, failures = results
        results = (values, portable_results(([], failures))[1])
    try:
        conn.send(results)
    except OSError:
        os._exit(0)
    except Exception:  # a value cannot be pickled: that attempt fails, not the batch
        send(portable_results(results, getattr(fn, "__qualname__", repr(fn))))
