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
