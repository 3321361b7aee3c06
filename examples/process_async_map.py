"""mode="process_async": worker processes that each run an event loop, for async functions
that also need CPU (parse what you download, on several cores).

    python examples/process_async_map.py
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import time

from opero import operomap


@operomap(mode="process_async", workers=2, cache=False, progress=False)
async def fetch_and_hash(n: int) -> tuple[int, str, int]:
    await asyncio.sleep(0.05)  # I/O: many of these overlap inside each worker's loop
    digest = hashlib.sha256(str(n).encode() * 20_000).hexdigest()[:12]  # CPU
    return n, digest, os.getpid()


def main() -> int:
    start = time.perf_counter()
    results = asyncio.run(fetch_and_hash(range(40)))
    took = time.perf_counter() - start
    pids = {pid for _, _, pid in results}
    print(
        f"{len(results)} results in {took:.2f}s from {len(pids)} worker process(es); "
        f"first: {results[0][:2]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
