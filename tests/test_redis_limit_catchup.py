"""The Redis rate limit against a real redis-server: several limits catch up as in memory
(the same admissions), ``peek`` books nothing, ``Limit(actual=)`` moves the shared schedule."""

from __future__ import annotations

import random
import time
import warnings
from typing import Any

import pytest

from opero import Limit, opero
from opero.backends.redis.rate_limit import RedisRateLimiter
from opero.limits.rate import RateLimiter
from tests.test_limit_catchup import check_windows

pytestmark = pytest.mark.timeout(120)


def spied(lim: RedisRateLimiter) -> list[int]:
    """The server's admission times (microseconds) of every booking ``lim`` makes."""
    seen: list[int] = []
    booked_at = lim._booked_at

    def spy(now: float, reply: list[Any], costs: Any) -> float:
        seen.append(int(reply[2]))
        return booked_at(now, reply, costs)

    lim._booked_at = spy  # type: ignore[method-assign]
    return seen


def test_redis_catches_up_like_memory(redis_url: str) -> None:
    """200 requests / 2 s and 48 000 tokens / 2 s, 400 attempts booked ahead with mixed
    costs: the server admits them in max(n / request rate, sum of costs / token rate)
    within 3 %, every window within its budget, at the times the memory limiter gives."""
    rnd = random.Random(5)
    costs = [float(rnd.choice([20, 60, 120, 240, 360, 480, 600])) for _ in range(400)]
    limits = [Limit("200/2s"), Limit("48000/2s", cost=len)]
    lim = RedisRateLimiter(limits, redis_url, "catchup")
    seen = spied(lim)
    for cost in costs:
        lim.reserve(time.monotonic(), [1.0, cost])
    times = [(t - seen[0]) / 1e6 for t in seen]
    ideal = max(len(costs) / 100, sum(costs) / 24000)
    assert times[-1] <= 1.03 * ideal, (times[-1], ideal)
    check_windows(times, [1.0] * len(times), limits[0])
    check_windows(times, costs, limits[1])
    mem = RateLimiter(limits)
    expected = [mem.reserve(0.0, [1.0, cost]) for cost in costs]
    assert max(abs(a - b) for a, b in zip(times, expected, strict=True)) < 0.05


def test_redis_peek_is_the_next_booking_and_books_nothing(redis_url: str) -> None:
    lim = RedisRateLimiter([Limit(10), Limit(100, cost=len)], redis_url, "peek")
    other = RedisRateLimiter([Limit(10), Limit(100, cost=len)], redis_url, "peek")
    for _ in range(5):
        lim.reserve(time.monotonic(), [1.0, 30.0])
    now = time.monotonic()
    first = other.peek(now, [1.0, 30.0])
    assert first - now > 1.0  # the bookings of another client count
    for _ in range(20):
        other.peek(time.monotonic(), [1.0, 30.0])
    now2 = time.monotonic()
    booked = other.reserve(now2, [1.0, 30.0])
    assert booked == pytest.approx(first, abs=0.02)  # the peeks booked nothing
    assert lim.peek(time.monotonic(), [1.0, 1.0]) > booked  # and the booking is seen


def test_redis_single_limit_peek(redis_url: str) -> None:
    lim = RedisRateLimiter(4, redis_url, "peek-one")
    now = time.monotonic()
    assert lim.peek(now) == pytest.approx(now, abs=0.02)
    lim.reserve(now)
    lim.reserve(now)
    ahead = lim.peek(time.monotonic())
    assert ahead - now == pytest.approx(0.5, abs=0.03)
    assert lim.reserve(time.monotonic()) == pytest.approx(ahead, abs=0.02)


def test_redis_refund_and_debit_move_the_shared_schedule(redis_url: str) -> None:
    """10 units/s, estimated 5 a call (0.5 s): a call that used 1 gives 0.4 s back to every
    client of the schedule; one that used 15 takes 1 s more."""
    limit = Limit(10, cost=lambda: 5, actual=lambda used: used)
    lim = RedisRateLimiter([limit], redis_url, "actual")
    other = RedisRateLimiter([limit], redis_url, "actual")
    now = time.monotonic()
    lim.reserve(now, [5.0])
    lim.heard(True, 1, [5.0])
    assert other.peek(now) - now == pytest.approx(0.1, abs=0.03)
    lim.heard(False, ValueError("no"), [5.0])  # a failure keeps its estimate
    assert other.peek(now) - now == pytest.approx(0.1, abs=0.03)
    lim.heard(True, 15, [5.0])
    assert other.peek(now) - now == pytest.approx(1.1, abs=0.03)


def test_redis_failing_actual_warns_once(redis_url: str) -> None:
    lim = RedisRateLimiter(
        [Limit(10, cost=lambda: 5, actual=lambda r: 1 / 0)], redis_url, "actual-fails"
    )
    now = time.monotonic()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            lim.heard(True, "ok", [5.0])
    assert len([w for w in seen if issubclass(w.category, RuntimeWarning)]) == 1
    assert lim.reserve(now, [5.0]) == pytest.approx(now, abs=0.02)


def test_redis_actual_end_to_end(redis_url: str) -> None:
    """Through ``@opero``: 6 calls estimated at 0.5 s each, really using 0.05 s, take well
    under the 2.5 s their estimates would."""

    @opero(
        cache=False,
        rate_limit=["50/s", Limit(20, cost=lambda n: 10, actual=lambda r: 1)],
        rate_limit_backend="redis",
        cache_url=redis_url,
        cache_namespace=f"actual-{time.time()}",
    )
    def f(n: int) -> int:
        return n

    start = time.monotonic()
    assert [f(n) for n in range(6)] == list(range(6))
    assert time.monotonic() - start < 1.5


def test_redis_down_corrections_go_to_the_local_schedule() -> None:
    limit = Limit(10, cost=lambda: 5, actual=lambda used: used)
    lim = RedisRateLimiter([limit], "redis://127.0.0.1:1", "down")  # nothing listens there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        now = time.monotonic()
        assert lim.reserve(now, [5.0]) == now
        lim.heard(True, 1, [5.0])
        assert lim.peek(now, [5.0]) - now == pytest.approx(0.1, abs=0.03)
