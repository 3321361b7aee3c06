"""The Redis cache on a real redis-server: renewed leases (one computation, however long; a dead
holder frees the key within about 5 s), no secret in any message, one client per event loop
released with it, undecodable values are misses, a refused write does not stop reads."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from opero import OperoBackendWarning, opero
from opero.backends.redis.client import BackendDown, redact
from opero.core import health

pytestmark = pytest.mark.slow

JOB = """
import os, sys, time
import redis
from opero import opero

URL = os.environ["JOB_REDIS"]

@opero(cache_backend="redis", cache_url=URL, cache_namespace="lease")
def compute(x):
    redis.Redis.from_url(URL).incr("computations")
    print("computing", flush=True)
    time.sleep(float(os.environ["JOB_SLEEP"]))
    return x * 10
"""


def _job(tmp_path: Path, redis_url: str, sleep: float) -> subprocess.Popen[str]:
    (tmp_path / "leasejob.py").write_text(JOB)
    env = {
        **os.environ,
        "JOB_REDIS": redis_url,
        "JOB_SLEEP": str(sleep),
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }
    return subprocess.Popen(
        [sys.executable, "-c", "import leasejob; print(leasejob.compute(7), flush=True)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_a_computation_longer_than_the_lease_is_started_once(
    tmp_path: Path, redis_url: str, redis_server
) -> None:
    holder = _job(tmp_path, redis_url, 8.0)  # longer than the 5 s lease: it is renewed
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "computing"
    time.sleep(1)
    waiter = _job(tmp_path, redis_url, 0.0)
    out_holder, err_holder = holder.communicate(timeout=60)
    out_waiter, err_waiter = waiter.communicate(timeout=60)
    assert out_holder.strip() == "70", err_holder
    assert out_waiter.strip() == "70", err_waiter  # the holder's value, not its own run
    assert int(redis_server.client().get("computations")) == 1


def test_a_dead_holder_frees_the_key_within_about_five_seconds(
    tmp_path: Path, redis_url: str, redis_server
) -> None:
    holder = _job(tmp_path, redis_url, 600.0)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "computing"
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
    start = time.monotonic()
    waiter = _job(tmp_path, redis_url, 0.0)
    out, err = waiter.communicate(timeout=60)
    assert out.split() == ["computing", "70"], err  # computed here once the lease lapsed
    assert time.monotonic() - start < 9
    assert int(redis_server.client().get("computations")) == 2


def test_no_secret_in_warnings_errors_or_reprs() -> None:
    health.reset()
    url = "redis://opero:userpart-s3cret@127.0.0.1:1/0?password=query-s3cret"
    calls = []

    @opero(cache_backend="redis", cache_url=url)
    def f(x: int) -> int:
        calls.append(x)
        return x

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(1) == 1
        assert f(2) == 2
    texts = [str(w.message) for w in caught]
    assert texts and all("s3cret" not in t for t in texts)
    assert any("127.0.0.1:1" in t and "f" in t for t in texts)  # names where, and whose
    store = f.__opero_cache__.store  # type: ignore[attr-defined]
    assert "s3cret" not in repr(store)
    try:
        store.get("k")
    except BackendDown as exc:
        assert "s3cret" not in str(exc)
    assert "s3cret" not in redact(url)
    assert redact("redis://:only%40pw@h:1/0") == "redis://:***@h:1/0"


def test_one_client_per_event_loop_released_with_it(redis_url: str) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="loops")
    async def f(x: int) -> int:
        return x

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    asyncio.run(f(0))
    before = open_fds()
    for i in range(300):
        asyncio.run(f(i % 3))
    assert open_fds() - before <= 3  # the first build leaked one socket per asyncio.run


def test_undecodable_values_are_misses(redis_url: str, redis_server) -> None:
    health.reset()

    @opero(cache_backend="redis", cache_url=redis_url, cache_serializer="json")
    def f(x: int) -> list[int]:
        return [x]

    assert f(1) == [1]
    client = redis_server.client()
    (key,) = [k for k in client.keys("*") if not k.endswith(b":lease")]
    client.set(key, pickle.dumps(object()))
    with pytest.warns(OperoBackendWarning):
        assert f(1) == [1]  # recomputed; never the stored bytes

    store = f.__opero_cache__.store  # type: ignore[attr-defined]
    client.set(key, b"\x80not json")
    client.set(key.decode() + ":lease", "someone", px=300)
    assert store.wait(key.decode()) is not None  # a miss value, never an exception
    from opero.cache.store import MISS

    assert store.wait(key.decode()) is MISS


WRITES: list[int] = []  # module-level: a closure's values are part of Redis keys


def test_a_refused_write_does_not_stop_reads(own_redis) -> None:
    health.reset()
    calls = WRITES
    calls.clear()

    @opero(cache_backend="redis", cache_url=own_redis.url)
    def f(size: int) -> bytes:
        WRITES.append(size)
        return b"x" * size

    assert f(10) == b"x" * 10
    client = own_redis.client()
    client.config_set("maxmemory-policy", "noeviction")
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", used + 200_000)
    with pytest.warns(OperoBackendWarning, match="OutOfMemory|OOM"):
        assert f(2_000_000) == b"x" * 2_000_000  # the write is refused; the result is kept
    assert f(10) == b"x" * 10  # reads still work: a hit
    assert calls == [10, 2_000_000]
    client.config_set("maxmemory", 0)


@pytest.mark.parametrize("state", [b"not a number", b"nan", None])
def test_corrupt_or_far_future_limiter_state_is_reset(redis_url: str, redis_server, state) -> None:
    health.reset()

    @opero(
        cache=False,
        rate_limit=5,
        rate_limit_backend="redis",
        cache_url=redis_url,
        cache_namespace="corrupt",
    )
    def tick() -> int:
        return 1

    tick()
    client = redis_server.client()
    (key,) = client.keys("corrupt:ratelimit:*")
    if state is None:  # two days ahead on the server's clock
        seconds, micros = client.time()
        state = str((seconds + 2 * 86_400) * 1_000_000 + micros).encode()
    client.set(key, state)
    start = time.monotonic()
    with pytest.warns(OperoBackendWarning, match="corrupt or over 24 h ahead"):
        assert tick() == 1
    assert time.monotonic() - start < 2  # never a two-day wait
    assert float(client.get(key)) < (client.time()[0] + 60) * 1_000_000
