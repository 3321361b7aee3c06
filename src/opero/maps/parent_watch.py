"""A worker process ends soon after the process that runs its map does.

Worker processes are the caller's daemons, but a daemon flag only helps when the caller
exits cleanly: after SIGKILL, SIGTERM or a crash, nothing would stop a worker in the middle
of its batch. So each worker, as it starts:

- on Linux, asks the kernel for SIGKILL when its parent goes (``PR_SET_PDEATHSIG``), which
  works even while the function holds the interpreter lock in C code. The kernel sends it
  when the parent *thread* that started the worker ends: opero starts workers from the thread
  running the map's event loop, which stops them before it ends;
- everywhere, runs a watcher thread that waits on a process descriptor of the caller (Linux,
  no wake-ups; Windows, the parent's handle) or checks every 0.2 s that its parent has not
  changed and the caller still exists, and ends the process at once when the caller is gone.
  Under the forkserver start method the parent is the fork server: the caller is watched.
"""

from __future__ import annotations

import functools
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable

__all__ = ["POLL_SECONDS", "preload", "watch_parent"]

POLL_SECONDS = 0.2  #: how often the watcher looks where it cannot wait on the caller
_PR_SET_PDEATHSIG = 1
_GONE = 70  #: exit status of a worker whose caller died (nobody is left to read it)


@functools.cache
def preload() -> Callable[..., int] | None:
    """libc's ``prctl`` (None where there is none), looked up once: called in the caller, a
    forked worker inherits it and starts without importing ``ctypes`` (milliseconds)."""
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no prctl here: the watcher thread is enough
        return None


def watch_parent(caller: int) -> None:
    """End this process soon after ``caller`` (the process running the map) ends."""
    parent = os.getppid()
    _death_signal()
    if not _alive(caller, parent):  # it died before the watch began
        os._exit(_GONE)
    threading.Thread(
        target=_watch, args=(caller, parent), name="opero-parent-watch", daemon=True
    ).start()


def _death_signal() -> None:
    prctl = preload()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _alive(caller: int, parent: int) -> bool:
    if sys.platform == "win32":  # no re-parenting, and os.kill would end the caller
        return True
    if os.getppid() != parent:
        return False
    if caller == parent:
        return True
    try:
        os.kill(caller, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists
        pass
    return True


def _watch(caller: int, parent: int) -> None:
    descriptor = None
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:
        try:
            descriptor = pidfd_open(caller)
        except OSError:
            descriptor = None
    if descriptor is not None:
        if _alive(caller, parent):
            poll = select.poll()
            poll.register(descriptor, select.POLLIN)
            poll.poll()  # readable once the caller has ended
        os._exit(_GONE)
    if sys.platform == "win32":  # spawn only: the parent is the caller; wait on its handle
        import multiprocessing

        process = multiprocessing.parent_process()
        if process is not None:
            process.join()
            os._exit(_GONE)
        return
    while _alive(caller, parent):
        time.sleep(POLL_SECONDS)
    os._exit(_GONE)
