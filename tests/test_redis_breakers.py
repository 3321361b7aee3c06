"""Cooldowns through Redis (a real redis-server): only the half-open probe closes an open
breaker, for every process sharing it; an attempt that started before the breaker opened
and succeeds afterwards changes nothing."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(60)


def _breakers(url: str, cooldown: float, after: int = 3) -> Any:
    from opero.backends.redis.breaker import RedisBreakers
    from opero.core.stats import Counters

    return RedisBreakers(url, f"opero:test:{time.time()}", cooldown, after, Counters())


def test_a_success_from_before_the_opening_leaves_it_open(redis_url: str) -> None:
    b = _breakers(redis_url, cooldown=30)
    assert b.allows("gpt-big")  # an attempt starts while closed
    for _ in range(3):
        b.failed("gpt-big")
    b.succeeded("gpt-big")  # it ends well after the opening
    assert not b.allows("gpt-big")
    assert 29 < b.back_in("gpt-big") <= 30
    other = _breakers(redis_url, cooldown=30)
    other.prefix = b.prefix  # another process sees the same state
    assert not other.allows("gpt-big")


def test_redis_tickets_tell_the_probe_from_attempts_in_flight(redis_url: str) -> None:
    b = _breakers(redis_url, cooldown=0.3)
    old = b.admit("k")
    assert old is not None and not old.probe
    for _ in range(3):
        b.failed("k")
    assert b.admit("k") is None
    time.sleep(0.4)
    probe = b.admit("k")
    assert probe is not None and probe.probe
    assert b.admit("k") is None  # one probe at a time, for every process
    b.succeeded("k", old)  # from before the opening: the probe still decides
    b.failed("k", old)  # its failure neither reopens it nor frees the probe
    b.release("k", old)
    assert b.admit("k") is None
    b.succeeded("k", probe)  # the probe closes it
    fresh = b.admit("k")
    assert fresh is not None and not fresh.probe
    b.failed("k", fresh)
    b.failed("k", fresh)
    b.succeeded("k", old)  # a success from before the last opening resets nothing
    b.failed("k", fresh)
    assert b.admit("k") is None  # three in a row since it closed: open again
    assert b.counters.cooldowns == 2


def test_a_failed_redis_probe_reopens(redis_url: str) -> None:
    b = _breakers(redis_url, cooldown=0.3, after=1)
    b.failed("k")
    time.sleep(0.4)
    probe = b.admit("k")
    assert probe is not None and probe.probe
    b.failed("k", probe)
    assert b.admit("k") is None and 0.2 < b.back_in("k") <= 0.3
    b.release("k", probe)  # a probe that already ended frees nothing
    assert b.admit("k") is None
