from __future__ import annotations

import asyncio
import threading

import pytest

from opero.core import health
from opero.core.clock import CLOCK


class FakeClock:
    """An injected clock: sleeping advances time at once and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(CLOCK, "monotonic", fake.monotonic)
    monkeypatch.setattr(CLOCK, "sleep", fake.sleep)
    monkeypatch.setattr(CLOCK, "async_sleep", fake.async_sleep)
    return fake


@pytest.fixture(autouse=True)
def _fresh_state() -> object:
    health.reset()
    yield
    health.reset()
    CLOCK.zero_waits = False


@pytest.fixture(scope="session")
def redis_server():  # type: ignore[no-untyped-def]
    from tests.redis_server import RedisServer

    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:  # type: ignore[no-untyped-def]
    redis_server.client().flushall()
    from opero.backends.redis.client import RedisHealth

    RedisHealth.reset()
    return str(redis_server.url)


@pytest.fixture
def own_redis():  # type: ignore[no-untyped-def]
    """A server of the test's own, which the test may stop and start."""
    from opero.backends.redis.client import RedisHealth
    from tests.redis_server import RedisServer

    RedisHealth.reset()
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    RedisHealth.reset()
