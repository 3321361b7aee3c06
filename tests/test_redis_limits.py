"""Rate limits on Redis: weighted limits and lists of limits, booked atomically for all the
processes that share a real redis-server."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time

import pytest

from opero import Limit, opero

pytestmark = pytest.mark.timeout(120)

WEIGHTED = """
    import sys, time
    from opero import Limit, opero

    # 60 units a second; each call costs 1, 2 or 3 units (its argument)
    @opero(cache=False, rate_limit=["40/second", Limit(60, cost=lambda n: n)],
           rate_limit_backend="redis", cache_url=sys.argv[1], cache_namespace=sys.argv[4])
    def tick(n):
        return time.time()

    start, end = float(sys.argv[2]), float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    out = []
    i = 0
    while True:
        n = 1 + i % 3
        t = tick(n)
        if t >= end:
            break
        out.append(f"{t!r}:{n}")
        i += 1
    print(" ".join(out))
"""


def test_weighted_limit_shared_by_two_processes(redis_url: str) -> None:
    start = time.time() + 5.0  # both processes are up and waiting before the window opens
    end = start + 3.0
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(WEIGHTED),
                redis_url,
                str(start),
                str(end),
                "weighted",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    starts = sorted(
        (float(t), int(n)) for out, _ in outs for t, n in (s.split(":") for s in out.split())
    )
    assert all(len(out.split()) >= 10 for out, _ in outs)  # both got slots
    units = sum(n for _, n in starts)
    assert 150 <= units <= 190, units  # 60 units/s for 3 s in total, not per process
    for i, (t0, _) in enumerate(starts):  # no second holds more than its budget + one call
        window = sum(n for t, n in starts[i:] if t - t0 < 1.0)
        assert window <= 60 + 3, (t0, window)


PAUSED = """
    import sys, time
    from pathlib import Path
    from opero import opero

    class SlowDown(Exception):
        retry_after = 2.0

    @opero(cache=False, retries=0, rate_limit=1000, rate_limit_backend="redis",
           cache_url=sys.argv[1], cache_namespace=sys.argv[2])
    def call(fail):
        started = time.time()
        if fail:
            raise SlowDown("429")
        return started

    mark = Path(sys.argv[3])
    if sys.argv[4] == "first":
        try:
            call(True)
        except SlowDown:
            mark.write_text(repr(time.time()))
    else:
        while not mark.exists():
            time.sleep(0.01)
        time.sleep(0.05)
        print(repr(float(mark.read_text())), repr(call(False)))
"""


def test_a_pause_is_shared_by_two_processes_through_redis(redis_url: str, tmp_path) -> None:
    mark = tmp_path / "failed_at"
    args = [redis_url, f"paused-{time.time()}", str(mark)]
    second = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(PAUSED), *args, "second"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PAUSED), *args, "first"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    failed_at, started = (float(x) for x in out.split())
    assert started >= failed_at + 2.0 - 0.15, started - failed_at  # waited out the other's pause
    assert started < failed_at + 5.0


COOLING = """
    import sys, time
    from opero import CircuitOpenError, opero

    calls = []

    @opero(cache=False, retries=0, rate_limit=1000, rate_limit_backend="redis",
           cache_url=sys.argv[1], cache_namespace=sys.argv[2], cooldown=6, cooldown_after=2)
    def call(fail):
        calls.append(fail)
        if fail:
            raise ConnectionError("down")
        return "ok"

    if sys.argv[3] == "first":
        for _ in range(2):
            try:
                call(True)
            except ConnectionError:
                pass
        print(call.stats().cooldowns)
    else:
        back = 0.0
        try:
            call(False)
            print("called")
        except CircuitOpenError as exc:
            back = exc.back_in[None]
            print("open", round(back, 1), len(calls))
        time.sleep(back + 0.1)
        print(call(False), len(calls))  # the half-open probe succeeds: closed again
        print(call(False), len(calls))
"""


def test_a_cooldown_is_shared_by_two_processes_through_redis(redis_url: str) -> None:
    args = [redis_url, f"cool-{time.time()}"]
    first = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(COOLING), *args, "first"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["1"]  # two failures opened the breaker
    second = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(COOLING), *args, "second"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    opened = lines[0].split()
    # (a cooldown of 6 s: the second interpreter starts well within it on a busy machine)
    assert opened[0] == "open" and 0 < float(opened[1]) <= 6 and opened[2] == "0"
    assert lines[1:] == ["ok 1", "ok 2"]


@pytest.mark.parametrize(
    ("limits", "first_wait"),
    [(2, 0.5), ([2, Limit(10, cost=lambda n=3: n)], 0.5), ([Limit(4, cost=lambda n=3: n)], 0.75)],
)
async def test_cancelled_waits_give_their_redis_slots_back(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, limits: object, first_wait: float
) -> None:
    """40 waits cancelled at 2/s: the next call waits as if they had never been made (the
    server's schedule, not only its last booking, is given back). Each wait starts once the
    one before it is booked: a burst of 40 connections to one server on a loaded machine may
    outlast the client's 0.5 s timeout, and a call whose limiter is unreachable is admitted
    at once (by design), which is not what this test is about."""
    from opero.core.clock import CLOCK

    monkeypatch.setattr(CLOCK, "monotonic", lambda: 0.0)
    asked: list[float] = []
    hang = True

    async def sleep(seconds: float) -> None:
        asked.append(seconds)
        if hang:
            await asyncio.Event().wait()  # only a cancellation ends this wait

    monkeypatch.setattr(CLOCK, "async_sleep", sleep)

    @opero(
        cache=False,
        rate_limit=limits,
        rate_limit_backend="redis",
        cache_url=redis_url,
        cache_namespace=f"cancelled-{time.time()}",
    )
    async def f() -> int:
        return 1

    assert await f() == 1  # admitted at once
    tasks = []
    for n in range(1, 41):
        tasks.append(asyncio.ensure_future(f()))
        while len(asked) < n and not tasks[-1].done():
            await asyncio.sleep(0.001)  # (real time: only the limiter's waits are hooked)
    for task in tasks:
        task.cancel()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), [
        o for o in outcomes if not isinstance(o, asyncio.CancelledError)
    ][:3]
    assert len(asked) == 40 and max(asked) > 15  # all were booked on the server
    hang = False
    asked.clear()
    assert await f() == 1
    # the first free slot after the one call made (less the real time gone by), not 50 s
    assert max(asked, default=0.0) <= first_wait + 0.01, asked


@pytest.mark.parametrize("seed", range(3))
def test_given_back_redis_slots_never_break_the_spacing(redis_url: str, seed: int) -> None:
    """Random bookings and releases on the server under two weighted limits: the admissions
    still held never overlap under any limit, and giving all back leaves no debt."""
    import random

    from opero.backends.redis.rate_limit import RedisRateLimiter

    rnd = random.Random(seed)
    lim = RedisRateLimiter([Limit(20), Limit(100, cost=lambda n: n)], redis_url, f"p{seed}")
    lim.reserve(0.0, [1, 0])  # admitted at once; everything after waits
    held: dict[float, list[tuple[int, int]]] = {}
    for _ in range(150):
        if held and rnd.random() < 0.4:
            key = rnd.choice(list(held))
            held.pop(key)
            lim.release(key)
            continue
        costs = [1.0, float(rnd.choice([0, 1, 3, 8]))]
        at = lim.reserve(0.0, costs)
        if at not in lim._booked:  # admitted at once (a slow run let the schedule pass)
            continue
        spans = lim._booked[at]  # per limit: start, end, epoch on the server's clock
        lens = [50_000, round(costs[1] * 10_000)]
        held[at] = [(int(spans[3 * i + 1]) - lens[i], int(spans[3 * i + 1])) for i in range(2)]
        for i in range(2):
            stretches = sorted(s[i] for s in held.values() if s[i][1] > s[i][0])
            for (_, end), (start, _) in zip(stretches, stretches[1:], strict=False):
                assert start >= end, (seed, i, stretches)
    for at in list(held):
        lim.release(at)
    assert lim.reserve(0.0, [1, 1]) < 0.2  # only the first booking is still ahead
