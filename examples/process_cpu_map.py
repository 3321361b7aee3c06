"""A CPU-bound map over worker processes, with a progress bar on a terminal.

python examples/process_cpu_map.py
"""

from __future__ import annotations

import sys
import time

from opero import operomap


@operomap(mode="process", workers=2, cache=False)
def count_primes(limit: int) -> int:
    """Primes below ``limit`` by trial division (deliberately slow)."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


def main() -> int:
    limits = [20_000 + 500 * i for i in range(24)]
    start = time.perf_counter()
    counts = count_primes(limits)  # the function must live at module level for processes
    print(
        f"{len(counts)} counts in {time.perf_counter() - start:.2f}s; "
        f"primes below {limits[-1]}: {counts[-1]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
