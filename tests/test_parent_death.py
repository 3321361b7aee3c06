"""Workers never outlive their map's process: when the caller dies (SIGTERM, SIGKILL),
every worker stops within about a second, even in the middle of a batch.

A real parent script runs a process map whose items write heartbeats to a file; the test
kills the parent and watches the heartbeats and the worker processes. Wide margins.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time
    from opero import operomap

    @operomap(mode="process", workers=2, cache=False, progress=False)
    def beat(x):
        with open(sys.argv[1], "a") as log:
            log.write(f"{os.getpid()} {time.time()}\\n")
        time.sleep(0.03)
        return x

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[3])
        if sys.argv[2] == "iter":  # the event loop (and the forks) on a helper thread
            for _ in beat.iter(range(20_000)):
                pass
        else:
            beat(range(20_000))
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _beats(log: Path) -> list[tuple[int, float]]:
    out = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out.append((int(parts[0]), float(parts[1])))
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
@pytest.mark.parametrize(
    ("sig", "how", "method"),
    [
        (signal.SIGTERM, "call", "fork"),
        (signal.SIGTERM, "iter", "fork"),
        (signal.SIGKILL, "call", "fork"),
        (signal.SIGKILL, "iter", "fork"),
        (signal.SIGKILL, "call", "spawn"),
        (signal.SIGKILL, "call", "forkserver"),  # the workers' parent is the fork server
    ],
)
def test_workers_stop_soon_after_the_caller_dies(
    tmp_path: Path, sig: int, how: str, method: str
) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    log = tmp_path / "beats"
    log.touch()
    proc = subprocess.Popen([sys.executable, str(script), str(log), how, method], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        # wait until both workers beat and batches have been measured and queued
        while len({pid for pid, _ in _beats(log)}) < 2 or len(_beats(log)) < 60:
            assert proc.poll() is None, "the parent ended early"
            assert time.monotonic() < deadline, "workers never started"
            time.sleep(0.05)
        workers = {pid for pid, _ in _beats(log)}
        killed_at = time.time()
        os.kill(proc.pid, sig)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(3.0)
    late = [t - killed_at for _, t in _beats(log) if t > killed_at + 2.0]
    assert not late, f"{len(late)} heartbeats after the caller died, the last {max(late):.1f} s on"
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, "a worker process outlived its caller"
