"""Several limits on one attempt: each is its own schedule and catches up time it lost waiting
for another, never holding more than its budget in any window of its period; one limit keeps
its strict spacing; ``peek`` answers what ``reserve`` would book, without booking."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from opero import Limit, opero
from opero.limit_spec import rate_and_period
from opero.limits.rate import RateLimiter


def mixed_costs(n: int, seed: int = 7) -> list[float]:
    rnd = random.Random(seed)
    return [float(rnd.choice([20, 50, 100, 200, 300, 400, 600])) for _ in range(n)]


def drive(lim: RateLimiter, costs: list[float], callers: int = 1) -> list[float]:
    """Callers always waiting: each books its next attempt as soon as its last one starts."""
    free = [0.0] * callers  # when each caller may book again
    times = []
    for k, cost in enumerate(costs):
        c = k % callers
        at = lim.reserve(free[c], [1.0, cost])
        assert at >= free[c]
        free[c] = at
        times.append(at)
    return times


def check_windows(times: Sequence[float], units: Sequence[float], limit: Limit) -> None:
    """No window [s, s + period) holds more than rate x period units (every start s that
    matters: the admissions themselves); an admission of more is alone in its windows."""
    budget = limit.rate * limit.period
    pairs = sorted((a, u) for a, u in zip(times, units, strict=True) if u > 0)
    for k, (s, _) in enumerate(pairs):
        inside = [u for a, u in pairs[k:] if a < s + limit.period - 1e-9]
        assert sum(inside) <= budget + 1e-6 or len(inside) == 1, (s, inside, budget)


@pytest.mark.parametrize("callers", [1, 8])
def test_request_and_token_limits_reach_the_ideal(callers: int) -> None:
    """300 requests / 6 s and 60 000 tokens / 6 s with mixed costs: the admissions take
    max(n / request rate, sum of costs / token rate) within 3 %, not the sum of maxima."""
    requests, tokens = Limit("300/6s"), Limit("60000/6s", cost=len)
    costs = mixed_costs(2000)
    times = drive(RateLimiter([requests, tokens]), costs, callers)
    ideal = max(len(costs) / requests.rate, sum(costs) / tokens.rate)
    summed = sum(max(1 / requests.rate, c / tokens.rate) for c in costs)
    took = times[-1] - times[0]
    assert took <= 1.03 * ideal, (took, ideal, summed)
    assert summed > 1.1 * ideal  # the old booking at one common time would miss it
    check_windows(times, [1.0] * len(times), requests)
    check_windows(times, costs, tokens)


@pytest.mark.parametrize("seed", range(4))
def test_windows_never_exceed_a_budget_whatever_the_costs(seed: int) -> None:
    rnd = random.Random(seed)
    limits = [Limit("5/2s"), Limit("100/s", cost=len)]
    lim = RateLimiter(limits)
    now, times, units = 0.0, [], []
    for _ in range(600):
        now += rnd.choice([0.0, 0.0, 0.01, 0.2, 1.5])
        cost = float(rnd.choice([0, 1, 5, 30, 80, 150]))
        at = lim.reserve(now, [1.0, cost])
        assert at >= now
        times.append(at)
        units.append(cost)
    check_windows(times, [1.0] * len(times), limits[0])
    check_windows(times, units, limits[1])


def test_single_limit_keeps_its_strict_spacing() -> None:
    lim = RateLimiter([Limit("300/6s", cost=len)])
    costs = mixed_costs(50)
    times = [lim.reserve(0.0, [c]) for c in costs]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps == pytest.approx([c / 50 for c in costs[:-1]])


def test_lost_time_is_caught_up_but_idle_time_is_not() -> None:
    """1 request/s and 1 token/s: a 5-token call makes the request limit wait 4 s; the next
    cheap calls catch up (within its 1 s window, one at a time); after a long pause there
    is nothing to catch up."""
    lim = RateLimiter([Limit("2/2s"), Limit(1, cost=len)])
    assert lim.reserve(0.0, [1, 5]) == 0.0
    assert lim.reserve(0.0, [1, 0.01]) == 5.0  # tokens bind; requests lose 4 s
    assert lim.reserve(0.0, [1, 0.01]) == pytest.approx(5.01)  # requests catch up...
    assert lim.reserve(0.0, [1, 0.01]) == pytest.approx(7.0)  # ...two in any 2 s at most
    assert lim.reserve(100.0, [1, 0.01]) == 100.0
    assert lim.reserve(100.0, [1, 0.01]) == 101.0  # idle time was not banked


def test_decorated_function_catches_up_end_to_end(clock) -> None:
    """``@opero(rate_limit=[...])`` with an injected clock: a token-heavy call makes the
    request limit wait, and the cheap calls after it come faster than one per 0.5 s."""
    starts: list[float] = []

    @opero(cache=False, rate_limit=["2/second", Limit(30, cost=lambda n: n)])
    def f(n: int) -> None:
        starts.append(clock.now)

    t0 = clock.now
    for n in [3, 3, 3, 60, 3, 3]:
        f(n)
    times = [round(t - t0, 9) for t in starts]
    # the 60-token call is alone in its 1 s token window (2.0); tokens then end at 4.0;
    # the request limit, 1.5 s behind, admits the last two 0.1 s apart (not 0.5 s)
    assert times == [0.0, 0.5, 1.0, 2.0, 4.0, 4.1]


def test_peek_answers_what_reserve_books_and_books_nothing() -> None:
    rnd = random.Random(3)
    for limits in ([Limit(4, cost=len)], [Limit("3/s"), Limit("50/s", cost=len)]):
        lim = RateLimiter(limits)
        now = 0.0
        for _ in range(300):
            now += rnd.choice([0.0, 0.05, 0.5])
            costs = [1.0, float(rnd.choice([0, 2, 10, 40]))][: len(limits)]
            if len(limits) == 1:
                costs = [float(rnd.choice([0, 1, 3]))]
            first = lim.peek(now, costs)
            assert lim.peek(now, costs) == first  # nothing booked
            booked = lim.reserve(now, costs)
            assert booked == first
            if rnd.random() < 0.3 and booked > now:
                lim.release(booked)


def test_released_admissions_keep_the_windows() -> None:
    """Random bookings and releases under two limits: the admissions still held never put
    more than a budget in a window, none lies before its call, and once every held
    admission is given back the next call is admitted at once."""
    rnd = random.Random(11)
    limits = [Limit(3), Limit(10, cost=lambda n: n)]
    lim = RateLimiter(limits)
    held: list[tuple[float, list[float]]] = []
    done: list[tuple[float, list[float]]] = []
    now = 0.0
    for _ in range(400):
        now += rnd.choice([0.0, 0.0, 0.05, 0.3])
        done += [(at, c) for at, c in held if at <= now]
        held = [(at, c) for at, c in held if at > now]
        if held and rnd.random() < 0.4:
            at, _ = held.pop(rnd.randrange(len(held)))
            lim.release(at)
            continue
        costs = [1.0, float(rnd.choice([0, 1, 2, 5, 12]))]
        at = lim.reserve(now, costs)
        assert at >= now
        (held if at > now else done).append((at, costs))
        kept = done + held
        for i, limit in enumerate(limits):
            check_windows([a for a, _ in kept], [c[i] for _, c in kept], limit)
    for at, _ in held:
        lim.release(at)
    assert lim.reserve(now + 5.0) == now + 5.0


@pytest.mark.parametrize(
    ("text", "rate", "period"),
    [("300/6s", 50.0, 6.0), ("10/5min", 10 / 300, 300.0), ("5/0.5s", 10.0, 0.5), (3, 3.0, 1.0)],
)
def test_rate_strings_with_a_number_of_periods(text: object, rate: float, period: float) -> None:
    assert rate_and_period(text) == (pytest.approx(rate), period)
    assert Limit(text).period == period  # type: ignore[arg-type]


def test_a_zero_period_is_refused() -> None:
    with pytest.raises(ValueError, match="period > 0"):
        Limit("5/0s")
