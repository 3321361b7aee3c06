"""A stress run: 32 threads (each with its own event loop) and 200 asyncio tasks hammer one
decorated async function with cache, retries, fallback and a rate limit, while attempts fail
at random. Integration test in real time (a few seconds); invariants checked at the end."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter

from opero import opero

from .recording import record_admissions

KEYS = 600
RATE = 400.0


def test_stress_threads_and_tasks() -> None:
    lock = threading.Lock()
    starts: list[float] = []
    successes: Counter[int] = Counter()
    rng = random.Random(1234)

    @opero(retries=4, min_delay=0.001, max_delay=0.01, arg_fallback="model", rate_limit=RATE)
    async def compute(key: int, model: tuple[str, ...] = ("a", "b")) -> tuple[int, str]:
        with lock:
            starts.append(time.monotonic())
            fail = rng.random() < 0.3
        await asyncio.sleep(0)
        if fail:
            raise ConnectionError(f"flaky {key} {model}")
        with lock:
            successes[key] += 1
        return key * 7, model

    errors: list[BaseException] = []
    results: list[tuple[int, tuple[int, str]]] = []

    async def caller(seed: int, calls: int) -> None:
        local = random.Random(seed)
        for _ in range(calls):
            key = local.randrange(KEYS)
            try:
                value = await compute(key)
            except BaseException as exc:  # nothing that should have been retried may escape
                errors.append(exc)
                continue
            with lock:
                results.append((key, value))

    def thread_main(n: int) -> None:
        asyncio.run(caller(n, 40))

    async def tasks_main() -> None:
        await asyncio.gather(*(caller(1000 + n, 5) for n in range(200)))

    admissions = record_admissions(compute)  # the limiter's own bookings: "admitted"
    threads = [threading.Thread(target=thread_main, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    asyncio.run(tasks_main())
    for t in threads:
        t.join(120)

    assert errors == []
    assert len(results) == 32 * 40 + 200 * 5  # no lost result
    for key, (value, model) in results:
        assert value == key * 7 and model in ("a", "b")
    assert all(n == 1 for n in successes.values()), successes.most_common(3)  # single-flight
    assert len(admissions) == len(starts)  # every attempt was admitted first
    admissions.sort()
    for w in (0.05, 0.25, 1.0):  # the rate limit held across 33 event loops and threads
        j = 0
        for i, s in enumerate(admissions):
            while j < len(admissions) and admissions[j] < s + w:
                j += 1
            assert j - i <= math.ceil(RATE * w) + 1
