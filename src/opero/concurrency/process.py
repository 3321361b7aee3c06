"""One worker process: a ``multiprocessing.Process`` fed batches over a pipe.

Each worker has its own pipe, so a worker that dies breaks nothing but the batch it held
(unlike a shared ``ProcessPoolExecutor``, where one death breaks every future). The caller
talks to a worker from a helper thread (:meth:`ProcessWorker.run_batch` blocks); the event
loop of the caller never blocks on a pipe. Workers ignore SIGINT: the caller handles Ctrl-C
and terminates them.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from opero.concurrency.attempts import Attempt, FunctionRef, Outcome, portable, run_batch
from opero.errors import OperoError, WorkerCrashedError

__all__ = ["ProcessWorker", "WorkerDied"]


class WorkerDied(Exception):
    """The worker process ended while the caller waited for it."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"worker process died (exit code {exitcode})")
        self.exitcode = exitcode

    def crash_error(self, name: str) -> WorkerCrashedError:
        return WorkerCrashedError(
            f"{name}: the worker process died while running this attempt "
            f"(exit code {self.exitcode})"
        )


def _worker_main(conn: Connection, ref: FunctionRef, timeout: float | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    setup_error: Exception | None = None
    try:
        fn = ref.resolve()
    except Exception as exc:
        setup_error = OperoError(
            f"the worker process cannot load {ref!r}: {exc!r}; a process mode needs a function "
            "defined at module level in an importable module (or in a script under "
            "`if __name__ == '__main__':` guards)"
        )
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        if setup_error is not None:
            outcomes: list[Outcome] = [(False, setup_error, None)] * len(batch)
        else:
            outcomes = run_batch(fn, batch, timeout)
            # an exception must survive the round trip: check each failure here
            outcomes = [o if o[0] else portable(o) for o in outcomes]
        try:
            conn.send(outcomes)
        except Exception:
            conn.send([portable(o) for o in outcomes])


class ProcessWorker:
    """A live worker process and the caller's end of its pipe."""

    def __init__(self, ctx: Any, ref: FunctionRef, timeout: float | None = None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process: multiprocessing.process.BaseProcess = ctx.Process(
            target=_worker_main,
            args=(child, ref, timeout),
            name=f"opero-worker:{ref.qualname}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def run_batch(self, batch: list[Attempt]) -> list[Outcome]:
        """Send ``batch``, wait for its outcomes (blocking; call from a helper thread).

        Raises :class:`WorkerDied` if the process ends first, and the pickling error if
        ``batch`` cannot be sent.
        """
        with self._lock:
            try:
                self.conn.send(batch)
            except (BrokenPipeError, ConnectionResetError, EOFError) as exc:
                raise WorkerDied(self._exitcode()) from exc
            try:
                outcomes: list[Outcome] = self.conn.recv()
            except (EOFError, OSError) as exc:
                raise WorkerDied(self._exitcode()) from exc
            return outcomes

    def _exitcode(self) -> int | None:
        self.process.join(timeout=1.0)
        return self.process.exitcode

    def stop(self) -> None:
        """Ask the worker to exit when it is done; terminate it if it does not."""
        try:
            self.conn.send(None)
        except Exception:
            pass
        self.process.join(timeout=2.0)
        if self.process.is_alive():
            self.kill()
        self._close()

    def kill(self) -> None:
        """End the worker now (Ctrl-C, a timed-out attempt)."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5.0)
        self._close()

    def _close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass
