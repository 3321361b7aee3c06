"""Starting a worker process: its pipe, the buffer it shares with the caller
(:mod:`opero.maps.spill`), and the process itself.

The caller-side pipe ends of live workers are tracked: a forked worker closes the ones it
inherited, so a worker's pipe is held only by the caller and that worker (a dead worker's
pipe then breaks at once, and no writer thread can block on it).
"""

from __future__ import annotations

import mmap
import multiprocessing
import os
import pickle
import threading
import weakref
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import NamedTuple

from opero.maps.parent_watch import preload
from opero.maps.spill import SIZE as SPILL_SIZE
from opero.maps.spill import SharedBuffer
from opero.maps.targets import ByValue, FunctionRef
from opero.maps.worker_side import serve

__all__ = ["Launched", "forget", "launch"]

#: the caller-side pipe ends of live workers (and child ends while a worker starts)
_OPEN: weakref.WeakSet[Connection] = weakref.WeakSet()
_FORK_LOCK = threading.Lock()  # held across a fork: a forked child gets a fresh one
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_FORK_LOCK", threading.Lock()))


class Launched(NamedTuple):
    """A worker process just started: the caller's end of its pipe, the process, and the
    buffer it records finished outcomes in."""

    conn: Connection
    process: BaseProcess
    spill: SharedBuffer


def launch(ctx: BaseContext, ref: FunctionRef | ByValue) -> Launched:
    """Start a worker process running ``ref`` (its helper threads are the caller's to
    start)."""
    with _FORK_LOCK:  # no other opero worker forks while these pipe ends are shared
        conn, child = ctx.Pipe(duplex=True)
        _OPEN.add(conn)
        _OPEN.add(child)  # a worker forked meanwhile elsewhere closes it too
        forked = ctx.get_start_method() == "fork"
        #: outcomes the worker finished in its current batch (read if it dies)
        #: (anonymous shared memory under fork: no file descriptor to keep)
        spill: SharedBuffer = mmap.mmap(-1, SPILL_SIZE) if forked else ctx.RawArray("B", SPILL_SIZE)
        # under spawn and forkserver the function travels pickled, so a worker that
        # cannot load it fails its attempts instead of dying at start, again and again
        target = ref if forked else pickle.dumps(ref)
        if forked:
            preload()
        process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main,
            args=(child, target, spill, os.getpid()),
            name=f"opero-worker:{ref.qualname}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            _OPEN.discard(child)
            child.close()
    return Launched(conn, process, spill)


def forget(conn: Connection) -> None:
    """``conn`` is closed: forked workers need not close it."""
    _OPEN.discard(conn)


def _worker_main(
    conn: Connection, ref: FunctionRef | ByValue | bytes, raw: SharedBuffer, caller: int
) -> None:
    # A process map inside this worker may start workers of its own: they end by themselves
    # when this worker ends (they watch it), so the daemon rule is not needed here.
    multiprocessing.current_process()._config["daemon"] = False  # type: ignore[attr-defined]
    for inherited in list(_OPEN):
        if inherited is not conn:
            try:
                inherited.close()
            except OSError:
                pass
    _OPEN.clear()
    serve(conn, ref, raw, caller)
