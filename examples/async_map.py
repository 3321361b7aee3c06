"""An async map: 200 coroutines, at most 50 in flight, results streamed as they finish.

python examples/async_map.py
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

from opero import operomap

rng = random.Random(9)
attempts: dict[int, int] = {}


@operomap(
    mode="async", workers=50, ordered=False, retries=2, min_delay=0.01, cache=False, progress=False
)
async def lookup(n: int) -> tuple[int, float]:
    delay = rng.uniform(0.01, 0.05)
    await asyncio.sleep(delay)
    attempts[n] = attempts.get(n, 0) + 1
    if n % 10 == 0 and attempts[n] == 1:  # every tenth lookup fails once, then succeeds
        raise ConnectionError("flaky")
    return n, delay


async def main() -> int:
    start = time.perf_counter()
    first = []
    async for n, _delay in lookup.iter(range(200)):
        if len(first) < 5:
            first.append(n)
    took = time.perf_counter() - start
    print(
        f"200 lookups in {took:.2f}s (ideal {200 * 0.03 / 50:.2f}s), "
        f"{sum(attempts.values())} attempts; first finished: {first}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
