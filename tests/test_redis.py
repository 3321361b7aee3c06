"""The Redis cache and rate limit, against a real redis-server."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import pytest

from opero import OperoBackendWarning, opero, operomap
from opero.backends.redis import client as redis_client


def run_script(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


#: call counts kept outside the functions: a closure's values are part of Redis keys
CALLS: dict[str, int] = {}


def test_cache_hit_ttl_and_namespace(redis_url: str, redis_server) -> None:
    CALLS["add"] = 0

    @opero(cache_backend="redis", cache_url=redis_url, cache_ttl=60, cache_namespace="t1")
    def add(a: int, b: int = 2) -> dict[str, int]:
        CALLS["add"] += 1
        return {"sum": a + b}

    assert add(1) == {"sum": 3}
    assert add(1) == {"sum": 3}
    assert add(a=1, b=2) == {"sum": 3}  # bound arguments with defaults: one key
    assert CALLS["add"] == 1
    client = redis_server.client()
    keys = client.keys("t1:*")
    assert len(keys) == 1 and b"add" in keys[0]
    assert 0 < client.pttl(keys[0]) <= 60_000


def test_cache_ttl_none_never_expires(redis_url: str, redis_server) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_ttl=None, cache_namespace="t2")
    def f() -> int:
        return 1

    f()
    (key,) = redis_server.client().keys("t2:*")
    assert redis_server.client().pttl(key) == -1


def test_cache_clear_removes_only_this_function_and_namespace(redis_url: str, redis_server) -> None:
    def make(ns: str):  # type: ignore[no-untyped-def]
        @opero(cache_backend="redis", cache_url=redis_url, cache_namespace=ns)
        def f(x: int) -> int:
            return x

        return f

    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="a")
    def g(x: int) -> int:
        return x

    fa, fb = make("a"), make("b")
    for x in range(3):
        fa(x), fb(x), g(x)
    client = redis_server.client()
    client.set("a:unrelated", 1)
    assert len(client.keys("*")) == 10
    fa.cache_clear()
    left = sorted(k.decode() for k in client.keys("*"))
    assert len(left) == 7
    assert not any(k.startswith("a:") and ".make.<locals>.f:" in k for k in left)
    assert "a:unrelated" in left


def test_second_process_hits_what_the_first_stored(redis_url: str, redis_server) -> None:
    code = """
        import sys
        from opero import opero

        @opero(cache_backend="redis", cache_namespace="xproc")
        def work(items, opts):
            print("computed", flush=True)
            return sum(items) + len(opts)

        print(work([1, 2, 3], {"b": 1, "a": 2}))
    """
    env = {"OPERO_REDIS_URL": redis_url, "PYTHONHASHSEED": "random"}
    first = run_script(code, env=env)
    second = run_script(code, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["computed", "8"]
    assert second.stdout.split() == ["8"]  # a hit: nothing computed


async def test_async_uses_redis_asyncio(redis_url: str) -> None:
    CALLS["fetch"] = 0

    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="aio")
    async def fetch(url: str) -> str:
        CALLS["fetch"] += 1
        await asyncio.sleep(0)
        return url.upper()

    assert await fetch("x") == "X"
    assert await fetch("x") == "X"
    assert CALLS["fetch"] == 1
    store = fetch.__opero_cache__.store  # type: ignore[attr-defined]
    assert fetch.__opero_cache__.async_store  # type: ignore[attr-defined]
    assert store.backend == "redis"


def test_async_function_across_event_loops(redis_url: str) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="loops")
    async def f(x: int) -> int:
        return x * 2

    assert asyncio.run(f(2)) == 4
    assert asyncio.run(f(2)) == 4  # a new loop gets its own connection


def test_unserializable_value_runs_uncached(redis_url: str) -> None:
    calls = 0

    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="unser")
    def f() -> object:
        nonlocal calls
        calls += 1
        return threading.Lock()

    f()
    f()
    assert calls == 2


def test_json_serializer(redis_url: str, redis_server) -> None:
    @opero(
        cache_backend="redis", cache_url=redis_url, cache_namespace="js", cache_serializer="json"
    )
    def f(x: int) -> dict[str, object]:
        return {"x": x, "items": [1, 2]}

    assert f(1) == {"x": 1, "items": [1, 2]}
    (key,) = redis_server.client().keys("js:*")
    assert json.loads(redis_server.client().get(key)) == {"x": 1, "items": [1, 2]}
    assert f(1) == {"x": 1, "items": [1, 2]}

    @opero(
        cache_backend="redis", cache_url=redis_url, cache_namespace="js2", cache_serializer="json"
    )
    def g() -> object:
        return {1, 2}  # not JSON: returned, not cached

    assert g() == {1, 2}
    assert redis_server.client().keys("js2:*") == []


SLOW = """
    import sys, time
    import redis
    from opero import opero

    url = sys.argv[1]
    counter = redis.Redis.from_url(url)

    @opero(cache_backend="redis", cache_url=url, cache_namespace="flight")
    def slow(x):
        counter.incr("computations")
        time.sleep(1.0)
        return x * 10

    start = float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    print(slow(7))
"""


def test_single_flight_across_processes(redis_url: str, redis_server) -> None:
    start = time.time() + 1.5
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(SLOW), redis_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [o[0].strip() for o in outs] == ["70", "70", "70"], [o[1] for o in outs]
    assert int(redis_server.client().get("computations")) == 1


# ----- the shared rate limit ----------------------------------------------------------------

LIMITED = """
    import sys, time
    from opero import opero

    @opero(cache=False, rate_limit=20, rate_limit_backend="redis", cache_url=sys.argv[1],
           cache_namespace="rl")
    def tick():
        return time.time()

    start, end = float(sys.argv[2]), float(sys.argv[3])
    time.sleep(max(0.0, start - time.time()))
    stamps = []
    while True:
        t = tick()
        if t >= end:
            break
        stamps.append(t)
    print(" ".join(repr(s) for s in stamps))
"""


def test_rate_limit_shared_by_four_processes(redis_url: str) -> None:
    start = time.time() + 6.0  # every process is up and waiting before the window opens
    end = start + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(LIMITED), redis_url, str(start), str(end)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    stamps = sorted(float(s) for out, _ in outs for s in out.split())
    assert 38 <= len(stamps) <= 42, len(stamps)  # 20/s for 2 s in total, not per process
    per_process = [len(out.split()) for out, _ in outs]
    assert all(n >= 5 for n in per_process), per_process  # every process got slots
    for w in (0.25, 0.5, 1.0):  # no bursts anywhere
        for i, s in enumerate(stamps):
            assert sum(1 for x in stamps[i:] if x - s < w) <= math.ceil(20 * w) + 1


async def test_async_rate_limit_on_redis(redis_url: str) -> None:
    starts: list[float] = []

    @opero(
        cache=False,
        rate_limit=40,
        rate_limit_backend="redis",
        cache_url=redis_url,
        cache_namespace="arl",
    )
    async def tick() -> None:
        starts.append(time.monotonic())

    await asyncio.gather(*(tick() for _ in range(9)))
    assert max(starts) - min(starts) >= 8 / 40 * 0.9


# ----- failing safely ---------------------------------------------------------------------------


@pytest.fixture
def quick_retry(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(redis_client, "RETRY_AFTER", 0.2)


DOWN_CALLS: list[int] = []


def test_redis_stopped_mid_run_then_back(own_redis, quick_retry) -> None:
    calls = DOWN_CALLS
    calls.clear()

    @opero(cache_backend="redis", cache_url=own_redis.url, cache_namespace="down")
    def f(x: int) -> int:
        DOWN_CALLS.append(x)
        return x * 2

    assert f(1) == 2
    assert f(1) == 2
    assert calls == [1]
    own_redis.stop()
    with pytest.warns(OperoBackendWarning, match="redis backend failed"):
        assert f(1) == 2  # runs uncached; the result is not lost
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per backend per minute
        assert f(2) == 4
    assert calls == [1, 1, 2]
    own_redis.start()
    time.sleep(0.3)  # past the cool-off period (patched to 0.2 s)
    assert f(3) == 6
    assert f(3) == 6
    assert calls == [1, 1, 2, 3]  # the cache works again by itself


def test_redis_unreachable_at_start(quick_retry) -> None:
    from tests.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"

    @opero(cache_backend="redis", cache_url=url)
    def f(x: int) -> int:
        return x + 1

    t0 = time.monotonic()
    with pytest.warns(OperoBackendWarning):
        assert f(1) == 2
    assert f(1) == 2
    assert time.monotonic() - t0 < 5


def test_server_that_never_answers_does_not_hang(quick_retry) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections, never replies
    url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
    try:

        @opero(cache_backend="redis", cache_url=url)
        def f(x: int) -> int:
            return x * 3

        t0 = time.monotonic()
        with pytest.warns(OperoBackendWarning):
            assert f(2) == 6
        assert time.monotonic() - t0 < 3  # read timeout, not a hang
    finally:
        silent.close()


def test_rate_limit_falls_back_to_process_limit(quick_retry, clock) -> None:
    from tests.redis_server import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"

    @opero(cache=False, rate_limit=10, rate_limit_backend="redis", cache_url=url)
    def f() -> int:
        return 1

    # the first Redis part to notice names itself (pauses are read before the limit books)
    with pytest.warns(OperoBackendWarning, match="redis (pauses|rate limit) backend failed"):
        for _ in range(5):
            f()
    assert clock.sleeps == pytest.approx([0.1] * 4)  # still limited, per process


async def test_async_redis_down_runs_uncached(own_redis, quick_retry) -> None:
    calls = 0

    @opero(cache_backend="redis", cache_url=own_redis.url, cache_namespace="adown")
    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return x

    assert await f(1) == 1
    own_redis.stop()
    with pytest.warns(OperoBackendWarning):
        assert await f(1) == 1
    assert calls == 2


def test_operomap_shares_redis_cache_with_another_process(redis_url: str) -> None:
    code = """
        from opero import operomap

        @operomap(mode="thread", workers=2, cache_backend="redis", cache_namespace="map",
                  progress=False)
        def double(x):
            print("computed", x, flush=True)
            return x * 2

        print(double([1, 2, 3]))
    """
    env = {"OPERO_REDIS_URL": redis_url}
    first = run_script(code, env=env)
    second = run_script(code, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("computed") == 3
    assert second.stdout.strip() == "[2, 4, 6]"


def test_operomap_process_mode_with_redis_rate_limit(redis_url: str) -> None:
    from . import map_helpers as h

    f = operomap(
        mode="process",
        workers=2,
        cache=False,
        rate_limit=20,
        rate_limit_backend="redis",
        cache_url=redis_url,
        progress=False,
    )(h.square)
    t0 = time.monotonic()
    assert f(range(11)) == [x * x for x in range(11)]
    assert time.monotonic() - t0 >= 10 / 20 * 0.9


def test_disk_cache_directory_made_read_only() -> None:
    """A real permission failure: the check runs in a forked child that drops root."""
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges in a forked child")
    base = Path(tempfile.mkdtemp(prefix="opero-ro-", dir="/tmp"))
    base.chmod(0o755)  # reachable by the unprivileged child
    directory = base / "cache"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, open the cache in a directory it cannot write
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            directory.chmod(0o500)
            calls = 0

            @opero(cache_backend="disk", cache_dir=directory)
            def f(x: int) -> int:
                nonlocal calls
                calls += 1
                return x * 5

            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                results = [f(1), f(1)]
            warned = any(issubclass(w.category, OperoBackendWarning) for w in caught)
            os.write(write, json.dumps([results, calls, warned]).encode())
        except BaseException as exc:
            os.write(write, json.dumps(["error", repr(exc)]).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 4096):
        data += chunk
    os.waitpid(pid, 0)
    shutil.rmtree(base, ignore_errors=True)
    outcome = json.loads(data)
    assert outcome[0] != "error", outcome
    results, calls, warned = outcome
    assert results == [5, 5]  # the call never failed
    assert calls == 2  # ran uncached
    assert warned


def test_shared_redis_example_runs(redis_url: str) -> None:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "OPERO_REDIS_URL": redis_url}
    script = [sys.executable, str(root / "examples" / "shared_redis.py")]
    first = subprocess.run(script, capture_output=True, text=True, timeout=120, env=env)
    second = subprocess.run(script, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("calling the API") == 12
    assert second.stdout.count("calling the API") == 0  # every answer from the shared cache
    assert "12 answers" in second.stdout


def _lease_holder_for(f: object, redis_server, *args: object) -> tuple[str, str]:
    """Take the lease of ``f(*args)``'s key as another process would; return (key, lease)."""
    layer = f.__opero_cache__  # type: ignore[attr-defined]
    key = layer.key(args, {})
    redis_server.client().set(f"{key}:lease", "another-process", px=30_000)
    return key, f"{key}:lease"


def test_waits_for_another_process_holding_the_lease(redis_url: str, redis_server) -> None:
    import pickle

    calls = 0

    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="wait")
    def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return -1

    key, lease = _lease_holder_for(f, redis_server, 4)

    def other_process_finishes() -> None:
        time.sleep(0.3)
        redis_server.client().set(key, pickle.dumps(40))
        redis_server.client().delete(lease)

    threading.Thread(target=other_process_finishes).start()
    assert f(4) == 40  # the other process's value, not computed here
    assert calls == 0


async def test_async_waits_for_the_lease_then_takes_over(redis_url: str, redis_server) -> None:
    calls = 0

    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="await")
    async def f(x: int) -> int:
        nonlocal calls
        calls += 1
        return x * 3

    _key, lease = _lease_holder_for(f, redis_server, 5)

    async def holder_gives_up() -> None:
        await asyncio.sleep(0.3)
        redis_server.client().delete(lease)  # finished without storing (it failed)

    giving_up = asyncio.create_task(holder_gives_up())
    assert await f(5) == 15  # computed here once the lease was gone
    await giving_up
    assert calls == 1


async def test_async_waits_for_another_process_value(redis_url: str, redis_server) -> None:
    import pickle

    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="avalue")
    async def f(x: int) -> int:
        return -1

    key, lease = _lease_holder_for(f, redis_server, 6)

    async def other_process_stores() -> None:
        await asyncio.sleep(0.3)
        redis_server.client().set(key, pickle.dumps(60))
        redis_server.client().delete(lease)

    storing = asyncio.create_task(other_process_stores())
    assert await f(6) == 60
    await storing


async def test_redis_rate_limit_cancelled_wait_gives_the_slot_back(redis_url: str) -> None:
    @opero(
        cache=False,
        rate_limit=1,
        rate_limit_backend="redis",
        cache_url=redis_url,
        cache_namespace="cancel",
    )
    async def f() -> int:
        return 1

    limiter = f.__opero_judge__.limiter  # type: ignore[attr-defined]
    assert await f() == 1
    task = asyncio.create_task(f())  # books a slot about 1 s ahead and waits
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    t0 = time.monotonic()
    at = await limiter.reserve_async(t0)
    assert at - t0 < 1.0  # the given-back slot, not one after it (which would be ~2 s ahead)
