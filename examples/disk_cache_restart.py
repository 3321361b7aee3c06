"""A disk cache survives a restart: the second process gets the answers without computing.

    python examples/disk_cache_restart.py

The script runs itself twice as separate processes on one cache directory (created 0700);
the first computes and stores, the second finds every result on disk.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from opero import opero


def child(cache_dir: str) -> None:
    @opero(cache_backend="disk", cache_dir=cache_dir, cache_ttl=3600)
    def slow_square(x: int) -> int:
        time.sleep(0.2)  # an expensive call
        return x * x

    start = time.perf_counter()
    results = [slow_square(x) for x in range(5)]
    print(f"{results} in {time.perf_counter() - start:.2f}s")


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2])
        return 0
    with tempfile.TemporaryDirectory() as cache_dir:
        for run in ("first run ", "after restart"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", cache_dir],
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"{run}: {out.stdout.strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
