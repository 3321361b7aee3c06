"""Share one cache and one rate limit between processes (or machines) through Redis.

Run a Redis server, then this script (twice, or on two machines pointing at one server):

    redis-server --port 6379 &
    OPERO_REDIS_URL=redis://localhost:6379/0 python examples/shared_redis.py

Four worker processes call a pretend API that allows 5 calls per second in total. The rate
limit is held on the Redis server, so together they make at most 5 calls per second; the
answers land in the Redis cache, so the second run makes no call at all.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing import Pool

from opero import opero

URL = os.environ.get("OPERO_REDIS_URL", "redis://localhost:6379/0")


@opero(
    cache_backend="redis",
    cache_url=URL,
    cache_namespace="example",
    cache_ttl=600,
    rate_limit=5,  # calls per second for every process together
    rate_limit_backend="redis",
)
def lookup(word: str) -> str:
    """A pretend API call."""
    print(f"  [pid {os.getpid()}] calling the API for {word!r} at {time.time() % 100:.2f}")
    return word.upper()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--clear":
        lookup.cache_clear()
    words = [f"word{i}" for i in range(12)]
    start = time.perf_counter()
    with Pool(4) as pool:
        answers = pool.map(lookup, words)
        pool.close()  # let the workers exit on their own (the context exit would terminate them)
        pool.join()
    took = time.perf_counter() - start
    print(f"{len(answers)} answers in {took:.1f}s: {answers[:3]} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
