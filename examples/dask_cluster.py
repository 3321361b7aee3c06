"""Run an operomap over a Dask cluster, with the cache and the rate limit kept in this process.

Start a scheduler and some workers (on one machine or many), then point the map at them:

    dask scheduler --port 8786 &
    dask worker tcp://127.0.0.1:8786 --nworkers 2 --nthreads 1 &
    python examples/dask_cluster.py tcp://127.0.0.1:8786

The workers must be able to import this file's module (run them from this directory, or
install your code on them). Without an address, the script starts a LocalCluster for the map
and closes it afterwards.
"""

from __future__ import annotations

import socket
import sys
import time

from opero import operomap


def score(text: str, weight: int = 1) -> tuple[str, int, str]:
    """Some CPU work on a worker; returns which host did it."""
    total = sum(ord(c) * weight for c in text * 2000)
    return text, total, socket.gethostname()


def main() -> int:
    address = sys.argv[1] if len(sys.argv) > 1 else None
    work = operomap(
        mode="dask",
        address=address,  # None: a LocalCluster just for this call
        workers=2,
        retries=2,
        rate_limit=200,  # attempts per second over the whole cluster
        progress=True,
    )(score)
    texts = [f"document {i}" for i in range(40)]
    start = time.perf_counter()
    results = work(texts, weight=3)
    took = time.perf_counter() - start
    hosts = {host for _, _, host in results}
    print(f"{len(results)} results in {took:.1f}s on {len(hosts)} host(s); first: {results[0][:2]}")
    again = time.perf_counter()
    work(texts, weight=3)  # answered from this process's cache: no cluster needed
    print(f"second call from the cache in {time.perf_counter() - again:.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
