"""``rate_limit=opero.Adaptive(...)``: the learned rate, on an injected clock."""

from __future__ import annotations

from typing import Any

import pytest

from opero import Adaptive, Service, opero
from opero.core.clock import CLOCK
from tests.conftest import FakeClock


class Status(Exception):
    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"status {status}")
        self.status_code = status
        if retry_after is not None:
            self.retry_after = retry_after


class Response:
    """A successful response with headers (as httpx's ``Response.headers``)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def server(answers: list[Any]) -> tuple[Any, list[float]]:
    """A function that answers from ``answers`` in turn (an exception is raised) and records
    when each attempt started; the last answer repeats."""
    times: list[float] = []

    def call() -> Any:
        times.append(CLOCK.monotonic())
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    return call, times


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]


def test_admissions_start_evenly_spaced_at_start(clock: FakeClock) -> None:
    fn, times = server(["ok"])
    f = opero(cache=False, rate_limit=Adaptive(start="4/s", max="4/s"))(fn)
    for _ in range(5):
        f()
    assert gaps(times) == [0.25] * 4
    assert f.stats().learned_rate == 4.0


def test_a_429_lowers_the_rate_by_the_decrease(clock: FakeClock) -> None:
    fn, times = server([Status(429), "ok"])
    f = opero(cache=False, rate_limit=Adaptive(start=10, max=10), retries=0)(fn)
    with pytest.raises(Status):
        f()
    assert f.stats().learned_rate == pytest.approx(7.0)
    for _ in range(3):
        f()
    after = gaps(times)
    assert after[0] == pytest.approx(1 / 7)  # the first admission booked after the decrease
    assert 1 / 10 < after[1] < 1 / 7  # then on the way back up


def test_a_server_delay_is_a_throttling_signal(clock: FakeClock) -> None:
    fn, _ = server([Status(503, retry_after=1.0), "ok"])
    f = opero(cache=False, rate_limit=Adaptive(start=10, max=10, decrease=0.5), retries=0)(fn)
    with pytest.raises(Status):
        f()
    assert f.stats().learned_rate == pytest.approx(5.0)


@pytest.mark.parametrize("status", [500, 503, 404, 401])
def test_other_failures_leave_the_rate(clock: FakeClock, status: int) -> None:
    fn, _ = server([Status(status)])
    f = opero(cache=False, rate_limit=Adaptive(start=10, max=10), retries=0)(fn)
    with pytest.raises(Status):
        f()
    assert f.stats().learned_rate == 10.0


def test_successes_climb_a_cubic_curve_back_and_beyond(clock: FakeClock) -> None:
    fn, times = server([Status(429), "ok"])
    f = opero(cache=False, rate_limit=Adaptive(start=10, max=40), retries=0)(fn)
    with pytest.raises(Status):
        f()
    decreased = times[0]
    top = 10 * 0.98  # the curve levels off just under the rate at which the server said no
    k = ((top - 7) / 0.4) ** (1 / 3)  # the curve is back there after k seconds
    rates: list[tuple[float, float]] = []
    while CLOCK.monotonic() - decreased < k + 3:
        f()
        rates.append((CLOCK.monotonic() - decreased, f.stats().learned_rate))  # type: ignore[arg-type]
    for t, rate in rates:
        curve = max(7.0, min(40.0, top + 0.4 * (t - k) ** 3))
        if t <= k:  # back towards the rate of the decrease: the curve itself
            assert rate == pytest.approx(curve, rel=0.05), t
        else:  # beyond it: probing, never faster than the curve
            assert top - 0.1 <= rate <= curve * 1.01, t
    halfway = [r for t, r in rates if t <= k / 2][-1]
    assert halfway > 8.8  # concave: most of the way back in half the time
    assert rates[-1][1] > 10.3  # and beyond the rate at the decrease


def test_the_rate_stays_within_min_and_max(clock: FakeClock) -> None:
    fn, _ = server([Status(429)])
    f = opero(cache=False, rate_limit=Adaptive(start=10, max=20, min=2), retries=0)(fn)
    for _ in range(30):
        with pytest.raises(Status):
            f()
    assert f.stats().learned_rate == 2.0
    g = opero(cache=False, rate_limit=Adaptive(start=10, max=20))(server(["ok"])[0])
    for _ in range(400):
        g()
    assert g.stats().learned_rate == 20.0


def test_an_idle_limiter_does_not_come_back_at_a_rate_it_never_tried(clock: FakeClock) -> None:
    f = opero(cache=False, rate_limit=Adaptive(start=2))(server(["ok"])[0])
    for _ in range(4):
        f()
    clock.advance(3600)
    for _ in range(3):
        f()
    learned = f.stats().learned_rate
    assert isinstance(learned, float) and learned < 10


def test_stats_learned_rate_by_value_and_none_without(clock: FakeClock) -> None:
    plain = opero(cache=False, rate_limit=5)(server(["ok"])[0])
    plain()
    assert plain.stats().learned_rate is None

    seen: list[str] = []

    def ask(model: str) -> str:
        seen.append(model)
        if model == "a":
            raise Status(429)
        return model

    f = opero(
        cache=False,
        arg_fallback="model",
        retries=0,
        rate_limit={"a": Adaptive(start=10, max=10), "*": Adaptive(start=4, max=4)},
    )(ask)
    assert f(model=("a", "b")) == "b"
    assert f.stats().learned_rate == {"'a'": pytest.approx(7.0), "'b'": 4.0}

    shared = Service(rate_limit=Adaptive(start=3, max=3))
    g = opero(cache=False, rate_limit=shared)(server(["ok"])[0])
    g()
    assert g.stats().learned_rate == 3.0


def test_a_burst_of_signals_counts_once(clock: FakeClock) -> None:
    """Attempts booked together that all come back throttled lower the rate once; a signal
    after the spacing x the attempts then in flight lowers it again."""
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=10, max=10), "memory", None, "k", "f")
    start = clock.now
    booked = [limiter.reserve(clock.now) for _ in range(8)]
    assert booked == pytest.approx([start + i / 10 for i in range(8)])
    clock.advance(0.75)
    limiter.heard(False, Status(429), None)  # 7 still in flight: ignored for 7 x 0.1 s
    assert limiter.learned_rate == pytest.approx(7.0)
    for _ in range(6):
        clock.advance(0.1)
        limiter.heard(False, Status(429), None)
    assert limiter.learned_rate == pytest.approx(7.0)
    clock.advance(0.2)  # 0.8 s after the decrease
    limiter.reserve(clock.now)
    limiter.heard(False, Status(429), None)
    assert limiter.learned_rate == pytest.approx(4.9)


def test_a_released_booking_is_no_longer_in_flight_and_gives_its_time_back(
    clock: FakeClock,
) -> None:
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=2, max=2), "memory", None, "k", "f")
    first = limiter.reserve(clock.now)
    later = [limiter.reserve(clock.now) for _ in range(100)]
    for at in reversed(later):
        limiter.release(at)
    assert limiter.reserve(clock.now) == pytest.approx(first + 0.5)
    limiter.heard(False, Status(500), None)  # not a throttling signal
    clock.advance(0.6)
    limiter.heard(False, Status(429), None)  # 1 attempt was in flight, not 101
    assert limiter.learned_rate == pytest.approx(1.4)
    clock.advance(1 / 2 + 0.01)  # past 1 x the spacing before the decrease
    limiter.heard(False, Status(429), None)
    assert limiter.learned_rate == pytest.approx(0.98)


def test_headers_space_the_requests_left_until_the_reset(clock: FakeClock) -> None:
    answers: list[Any] = [
        Response({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "2s"})
    ]
    fn, times = server(answers)
    f = opero(cache=False, rate_limit=Adaptive(start=100, max=100))(fn)
    for _ in range(4):
        f()
    assert gaps(times) == pytest.approx([0.5] * 3)  # 2 s / (3 + 1)
    answers[0] = Response({})  # no more headers: once the reset has passed, 100/s again
    f()
    clock.advance(2.5)
    f()
    f()
    assert gaps(times)[-1] == pytest.approx(0.01)


def test_headers_of_and_anthropic_headers(clock: FakeClock) -> None:
    from datetime import UTC, datetime, timedelta

    def headers(result: Any) -> dict[str, str]:
        reset = datetime.now(UTC) + timedelta(seconds=3)
        return {
            "anthropic-ratelimit-requests-remaining": "2",
            "anthropic-ratelimit-requests-reset": reset.isoformat(),
        }

    fn, times = server([{"text": "hi"}])
    f = opero(cache=False, rate_limit=Adaptive(start=100, max=100, headers_of=headers))(fn)
    for _ in range(3):
        f()
    assert gaps(times) == pytest.approx([1.0, 1.0], abs=0.05)  # 3 s / (2 + 1)


def test_unreadable_headers_are_ignored(clock: FakeClock) -> None:
    def broken(result: Any) -> dict[str, str]:
        raise RuntimeError("no headers here")

    for headers_of, headers in [
        (None, {"x-ratelimit-remaining-requests": "x", "x-ratelimit-reset-requests": "2s"}),
        (None, {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "-1s"}),
        (None, {"anthropic-ratelimit-requests-remaining": "3"}),
        (None, {"anthropic-ratelimit-requests-reset": "soon", "x": "1"}),
        (broken, {}),
    ]:
        fn, times = server([Response(headers)])
        f = opero(cache=False, rate_limit=Adaptive(start=100, max=100, headers_of=headers_of))(fn)
        for _ in range(3):
            f()
        assert gaps(times) == pytest.approx([0.01, 0.01])


def test_a_decrease_respaces_the_admissions_booked_ahead_in_order(clock: FakeClock) -> None:
    """Admissions booked before a 429 but not yet due move apart to the new spacing, in
    their order (each waiter learns where on waking), and the next booking goes after them:
    no burst at the old rate after the server said no. Admissions already far enough apart
    stay where they are."""
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=10, max=10), "memory", None, "k", "f")
    start = clock.now
    booked = [limiter.reserve(start) for _ in range(5)]  # start + 0, 0.1, ... 0.4
    clock.advance(0.05)
    limiter.heard(False, Status(429), None)  # 10/s -> 7/s at start + 0.05
    assert limiter.learned_rate == pytest.approx(7.0)
    moved = [limiter.moved(at) for at in booked]
    assert moved[0] == booked[0]  # already admitted
    assert moved[1:] == pytest.approx([start + k / 7 for k in range(1, 5)])
    assert limiter.reserve(clock.now) == pytest.approx(start + 5 / 7)
    # a moved admission given back frees its new place (and only that)
    limiter.release(booked[2])
    assert limiter.peek(clock.now) == pytest.approx(start + 2 / 7)
    assert limiter.moved(booked[3]) == pytest.approx(start + 3 / 7)
    # a later decrease moves only what is too close for its spacing
    clock.advance(1.0)
    late = [limiter.reserve(clock.now) for _ in range(3)]
    limiter.heard(False, Status(429), None)
    rate = limiter.learned_rate
    assert rate < 7.0
    assert [limiter.moved(at) for at in late] == pytest.approx(
        [late[0], late[0] + 1 / rate, late[0] + 2 / rate]
    )


def test_a_waiting_caller_waits_on_when_its_admission_moved(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the decorator: a caller whose admission was booked before a 429 came back
    (elsewhere) waits, on waking, until where its admission moved; its attempt starts then."""
    from opero.decorators.services import state_of

    service = Service(rate_limit=Adaptive(start=10, max=10))
    fn, times = server(["ok"])
    f = opero(cache=False, rate_limit=service)(fn)
    f()  # admitted at once
    limiter = state_of(service).limiter
    assert limiter is not None
    fake_sleep, fell = clock.sleep, []

    def sleep(seconds: float) -> None:
        if not fell:  # while the caller waits, another attempt of the service is throttled
            clock.advance(0.01)
            fell.append(clock.now)
            limiter.heard(False, Status(429), None)
            fell.append(limiter.learned_rate)
            seconds -= 0.01
        fake_sleep(seconds)

    monkeypatch.setattr(CLOCK, "sleep", sleep)
    f()
    assert fell[0] == pytest.approx(times[0] + 0.01)
    spacing = 1 / fell[1]  # (lowered to below the one success seen in the last second)
    assert spacing > 0.1
    assert times[1] == pytest.approx(times[0] + spacing)
    # it slept in steps (asking where its admission is), in all until the new time
    assert sum(clock.sleeps) == pytest.approx(times[1] - times[0] - 0.01)
    assert clock.sleeps[0] < 0.1


def test_a_rising_rate_brings_the_admissions_ahead_earlier(clock: FakeClock) -> None:
    """The admissions ahead follow the learned rate both ways: a success that raises it
    packs them closer, in their order (no waiter keeps a slot booked at a lower rate)."""
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=2, max=20), "memory", None, "k", "f")
    start = clock.now
    booked = [limiter.reserve(start) for _ in range(4)]  # start + 0, 0.5, 1.0, 1.5
    clock.advance(0.01)
    limiter.heard(True, "ok", None)
    rate = limiter.learned_rate
    assert rate > 2
    assert [limiter.moved(at) for at in booked] == pytest.approx(
        [start + k / rate for k in range(4)]
    )


def test_a_429_after_a_decrease_from_an_attempt_sent_after_it_counts(clock: FakeClock) -> None:
    """A burst counts once: the attempts already sent when the rate fell. A 429 from an
    attempt admitted after the decrease is a new signal, however many wait behind it."""
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=10, max=10), "memory", None, "k", "f")
    first = limiter.reserve(clock.now)  # sent at once
    ahead = [limiter.reserve(clock.now) for _ in range(10)]
    clock.advance(0.01)
    limiter.heard(False, Status(429), None)  # the one sent: 10 -> 7; 10 still wait
    assert limiter.learned_rate == pytest.approx(7.0)
    clock.now = limiter.moved(ahead[0])  # the next is sent at its (moved) time
    limiter.heard(False, Status(429), None)
    assert limiter.learned_rate == pytest.approx(4.9)
    assert first < ahead[0]


def test_attempts_in_flight_count_against_what_the_headers_say_remains(clock: FakeClock) -> None:
    """An answer says 2 requests remain; 2 other attempts were sent and are not heard of yet
    (the server may have counted them after it made this answer): nothing is left, so the
    next admission waits for the reset, taken as late as its last digit allows."""
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=100, max=100), "memory", None, "k", "f")
    sent = [limiter.reserve(clock.now) for _ in range(3)]
    clock.now = sent[-1] + 0.001  # all three sent
    headers = {"x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "500ms"}
    limiter.heard(True, Response(headers), None)
    assert limiter.reserve(clock.now) == pytest.approx(clock.now + 0.501)


def test_admissions_booked_beyond_what_remains_wait_for_the_reset(clock: FakeClock) -> None:
    """5 admissions wait when an answer says 2 remain until a reset said to the hundredth
    of a second: 2 are spread evenly before it, 3 go after it (at the learned spacing)."""
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=100, max=100), "memory", None, "k", "f")
    limiter.reserve(clock.now)  # sent at once
    ahead = [limiter.reserve(clock.now) for _ in range(5)]
    clock.advance(0.001)
    now = clock.now
    headers = {"x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "0.90s"}
    limiter.heard(True, Response(headers), None)
    moved = [limiter.moved(at) for at in ahead]
    assert moved[:2] == pytest.approx([now + 0.3, now + 0.6])  # 0.9 s / (2 + 1)
    spacing = 1 / limiter.learned_rate
    assert moved[2:] == pytest.approx([now + 0.91 + k * spacing for k in range(3)])
    # the next booked goes after them, at the spacing in force when it is booked (the header's)
    assert limiter.reserve(clock.now) == pytest.approx(moved[-1] + 0.3)


@pytest.mark.parametrize(
    ("headers", "reset", "late"),
    [
        ({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "6m0s"}, 360, 361),
        (
            {"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "250ms"},
            0.25,
            0.251,
        ),
        ({"x-ratelimit-remaining-requests": "3", "x-ratelimit-reset-requests": "1.5"}, 1.5, 1.6),
        (
            {
                "anthropic-ratelimit-requests-remaining": "3",
                "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30Z",
            },
            30,
            31,
        ),
        (
            {
                "anthropic-ratelimit-requests-remaining": "3",
                "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:30.25+00:00",
            },
            30.25,
            30.26,
        ),
    ],
)
def test_a_reset_is_taken_as_late_as_its_last_digit_allows(
    headers: dict[str, str], reset: float, late: float
) -> None:
    from datetime import UTC, datetime

    from opero.core.ratelimit_headers import pace_of

    pace = pace_of(headers, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    assert pace is not None
    assert (pace.reset, pace.remaining, pace.late) == pytest.approx((reset, 3, late))
    assert pace.spacing() == pytest.approx(reset / 4)
    assert pace.spacing(sent=2) == pytest.approx(reset / 2)


def test_an_answer_older_than_the_one_followed_is_not_followed(clock: FakeClock) -> None:
    """Answers come back out of order: the answer to an attempt sent earlier says more
    remains than the answer, already heard, to one sent later. Its pace is older news."""
    from opero.decorators.services import make_limiter

    limiter: Any = make_limiter(Adaptive(start=100, max=100), "memory", None, "k", "f")
    first, second = limiter.reserve(clock.now), limiter.reserve(clock.now)
    ahead = [limiter.reserve(clock.now) for _ in range(3)]
    clock.now = second + 0.001
    newer = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "500ms"}
    limiter.heard(True, Response(newer), None, second)
    reset = clock.now + 0.501
    assert [limiter.moved(at) for at in ahead] == pytest.approx([reset, reset + 0.01, reset + 0.02])
    next_one = limiter.peek(clock.now)
    assert next_one > reset
    older = {"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "500ms"}
    limiter.heard(True, Response(older), None, first)
    assert [limiter.moved(at) for at in ahead] == pytest.approx([reset, reset + 0.01, reset + 0.02])
    assert limiter.peek(clock.now) == next_one
