"""``cache_delete``/``cache_contains`` and the refresh of the cache layer on a real
redis-server (memory and disk: tests/test_cache_control.py, tests/test_cache_refresh.py)."""

from __future__ import annotations

import time
import warnings
from typing import Any

import pytest

from opero import OperoBackendWarning, opero
from tests.test_cache_refresh import refreshing

CALLS: list[Any] = []  # module-level: a closure's values are part of Redis keys


@pytest.fixture(autouse=True)
def _calls() -> None:
    CALLS.clear()


def test_delete_contains_and_keys(redis_url: str, redis_server: Any) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="ctl", retries=0)
    def f(x: int, y: int = 2) -> int:
        CALLS.append((x, y))
        return x + y

    assert f.cache_contains(1) is False
    assert f(1) == 3
    assert f.cache_contains(1) is True
    assert f.cache_contains(x=1, y=2) is True  # the key binds the arguments, as the call does
    assert f.cache_contains(1, 3) is False
    assert f.cache_delete(1, y=2) is True
    assert f.cache_contains(1) is False
    assert f.cache_delete(1) is False
    assert redis_server.client().keys("ctl:*") == []
    assert f(1) == 3
    assert CALLS == [(1, 2), (1, 2)]


def test_with_cache_key(redis_url: str) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_key=lambda q, verbose=False: q)
    def f(q: str, verbose: bool = False) -> str:
        CALLS.append(q)
        return q.upper()

    f("a", verbose=True)
    assert f.cache_contains("a") is True
    assert f.cache_delete("a", True) is True
    assert f.cache_contains("a", verbose=True) is False
    f("a")
    assert CALLS == ["a", "a"]


def test_entry_expires(redis_url: str) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_ttl=1.0)
    def f(x: int) -> int:
        CALLS.append(x)
        return x

    f(1)
    assert f.cache_contains(1) is True
    time.sleep(1.6)
    assert f.cache_contains(1) is False
    assert f.cache_delete(1) is False
    f(1)
    assert CALLS == [1, 1]


async def test_async_function(redis_url: str) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="actl")
    async def f(x: int) -> int:
        CALLS.append(x)
        return len(CALLS)

    assert await f(1) == 1
    assert f.cache_contains(1) is True  # a plain method, not a coroutine
    assert f.cache_delete(1) is True
    assert await f(1) == 2
    assert await refreshing(f)(1) == 3
    assert await f(1) == 3


def test_refresh(redis_url: str, redis_server: Any) -> None:
    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="rf", retries=0)
    def f(x: int) -> int:
        CALLS.append(x)
        return len(CALLS)

    assert f(1) == 1
    assert refreshing(f)(1) == 2
    assert f(1) == 2
    assert not [k for k in redis_server.client().keys("rf:*") if k.endswith(b":lease")]


def test_refresh_does_not_wait_for_another_process_lease(redis_url: str, redis_server: Any) -> None:
    """Another process computes the key (holds its lease): a refresh neither waits for it
    nor returns its value."""

    @opero(cache_backend="redis", cache_url=redis_url, cache_namespace="lz", retries=0)
    def f(x: int) -> int:
        CALLS.append(x)
        return len(CALLS)

    f(1)
    client = redis_server.client()
    (key,) = client.keys("lz:*")
    client.set(key + b":lease", b"another", px=30_000)
    started = time.monotonic()
    assert refreshing(f)(1) == 2
    assert time.monotonic() - started < 10
    assert client.get(key + b":lease") == b"another"  # their lease is left alone
    assert f(1) == 2


def test_server_down(own_redis: Any) -> None:
    @opero(cache_backend="redis", cache_url=own_redis.url, retries=0)
    def f(x: int) -> int:
        CALLS.append(x)
        return x

    f(1)
    own_redis.stop()
    with pytest.warns(OperoBackendWarning, match="redis backend failed"):
        assert f.cache_contains(1) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reported at most once a minute, as lookups are
        assert f.cache_delete(1) is False
        assert f(1) == 1  # the call runs uncached, as before
        assert refreshing(f)(1) == 1
    assert CALLS == [1, 1, 1]
