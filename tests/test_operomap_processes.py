"""Process modes from a real script: start methods, Ctrl-C, progress on a terminal.

Integration tests: each runs a real Python subprocess. Time limits are wide.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import textwrap
import time
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, multiprocessing, sys
    from opero import operomap

    @operomap(mode="process", workers=2, cache=False, progress=False)
    def triple(x):
        return x * 3

    @operomap(mode="process_async", workers=2, cache=False, progress=False)
    async def atriple(x):
        await asyncio.sleep(0)
        return x * 3

    @operomap(mode="process", workers=1, cache=False, progress=False, retries=0,
              return_exceptions=True)
    def crash_at_150(x):
        with open(sys.argv[2], "a") as log:
            log.write(f"{x}\\n")
        if x == 150:
            import os
            os._exit(3)
        return x

    if __name__ == "__main__":
        multiprocessing.set_start_method(sys.argv[1])
        print(sum(triple(range(100))), sum(asyncio.run(atriple(range(10)))))
        crash_at_150(range(1000, 1200))  # measured: later batches hold many attempts
        out = crash_at_150(range(300))
        print(sum(1 for r in out if isinstance(r, Exception)), out[149], out[151])
    """
)


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_main_script_function_under_every_start_method(tmp_path: Path, method: str) -> None:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), method, str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [str(3 * sum(range(100))), str(3 * sum(range(10)))]
    # a worker crash under this start method: only the crashing item fails, nothing re-runs
    assert lines[1].split() == ["1", "149", "151"]
    runs = (tmp_path / "runs").read_text().split()
    assert sorted(int(r) for r in runs if int(r) < 1000) == list(range(300))


INTERRUPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from opero import operomap

    @operomap(mode="process", workers=2, cache=False, progress=False)
    def slow(x):
        Path(sys.argv[1], f"{os.getpid()}").touch()
        time.sleep(60)
        return x

    if __name__ == "__main__":
        print("parent", os.getpid(), flush=True)
        slow(range(10))
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_ctrl_c_exits_promptly_and_leaves_no_child(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(INTERRUPT)
    marks = tmp_path / "pids"
    marks.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(marks)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(marks.iterdir())) < 2:
            assert time.monotonic() < deadline, "workers never started"
            time.sleep(0.05)
        workers = [int(p.name) for p in marks.iterdir()]
        assert all(_alive(pid) for pid in workers)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert took < 10
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in workers), "a worker process outlived Ctrl-C"


PROGRESS = textwrap.dedent(
    """
    from opero import operomap

    failed = set()

    import time

    @operomap(mode="thread", workers=2, retries=1, min_delay=0, return_exceptions=True)
    def work(x):
        if x == 499 or (x % 100 == 7 and x not in failed):
            failed.add(x)
            raise ConnectionError(x)
        return x

    @operomap(mode="thread", workers=4, ordered=True)
    def slow_first(x):
        time.sleep(2 if x == 0 else 0.01)
        return x

    work(range(250))
    print(len(work(range(500))))
    slow_first(range(20))
    """
)


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text(PROGRESS)
    piped = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert piped.stdout.strip() == "500"
    assert piped.stderr == ""  # not a terminal: silent

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a real size
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=follower, text=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                data = os.read(leader, 4096)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        proc.wait(timeout=30)
        os.close(leader)
    assert proc.stdout is not None and proc.stdout.read().strip() == "500"
    terminal = b"".join(chunks).decode(errors="replace")
    assert "500/500" in terminal or "it/s" in terminal
    lines = terminal.replace("\r", "\n").strip().splitlines()
    # the second map: 250 cache hits; 307 and 407 failed once and were retried, 499 failed
    # in both rounds: one item failed (not three failed attempts)
    second = [line for line in lines if "500/500" in line][-1]
    assert "hits=250" in second and "retries=3" in second and "failed=1" in second, second
    # the third: the bar advances as items end, while their results wait for item 0
    assert any(re.search(r"\| (1?[1-9]|10)/20 ", line) for line in lines), lines[-5:]


SLOW_START = textwrap.dedent(
    """
    import multiprocessing, time
    from opero import operomap

    if __name__ == "__mp_main__":  # a spawned worker importing this script: a slow start
        time.sleep(1.0)

    @operomap(mode="process", workers=2, cache=False, retries=0, timeout=0.5, progress=False)
    def quick(x):
        return x

    if __name__ == "__main__":
        multiprocessing.set_start_method("spawn")  # a worker takes a while to start
        start = time.monotonic()
        print(quick(range(4)), round(time.monotonic() - start, 1))
    """
)


def test_a_timeout_starts_when_the_worker_takes_the_attempt(tmp_path: Path) -> None:
    """A per-attempt timeout: the clock starts when an idle worker takes the attempt, not while a fresh
    worker starts up (spawned workers import everything anew)."""
    script = tmp_path / "job.py"
    script.write_text(SLOW_START)
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("[0, 1, 2, 3]"), out.stdout
