"""Property-based tests of the decision logic (Hypothesis)."""

from __future__ import annotations

import copy
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opero import AllFailedError, opero
from opero.cache.encoding import Unkeyable, encode
from opero.core.retry import Schedule, backoff_delay, jittered
from opero.limits.rate import RateLimiter
from opero.testing import set_testing

delays = st.floats(min_value=0, max_value=100, allow_nan=False)
factors = st.floats(min_value=1, max_value=10, allow_nan=False)


@given(min_delay=delays, factor=factors, extra=delays, k=st.integers(1, 200))
def test_backoff_capped_non_negative_non_decreasing(
    min_delay: float, factor: float, extra: float, k: int
) -> None:
    max_delay = min_delay + extra
    d = backoff_delay(k, min_delay, factor, max_delay)
    assert 0 <= d <= max_delay
    assert backoff_delay(k + 1, min_delay, factor, max_delay) >= d


@given(
    min_delay=delays,
    factor=factors,
    extra=delays,
    k=st.integers(1, 60),
    r=st.floats(min_value=0, max_value=1),
)
def test_jitter_within_bounds(
    min_delay: float, factor: float, extra: float, k: int, r: float
) -> None:
    max_delay = min_delay + extra
    base = backoff_delay(k, min_delay, factor, max_delay)
    got = jittered(base, max_delay, rand=lambda: r)
    assert 0 <= got <= max_delay
    assert got >= 0.75 * base - 1e-9
    assert got <= 1.25 * base + 1e-9
    s = Schedule(
        retries=1,
        min_delay=min_delay,
        backoff_factor=factor,
        max_delay=max_delay,
        jitter=True,
    )
    assert 0 <= s.delay(k, rand=lambda: r) <= max_delay


@given(
    rate=st.floats(min_value=0.5, max_value=1000),
    gaps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_limiter_never_bursts(rate: float, gaps: list[float]) -> None:
    limiter = RateLimiter(rate)
    now = 0.0
    admissions = []
    for gap in gaps:
        now += gap
        at = limiter.reserve(now)
        assert at >= now
        admissions.append(at)
    assert admissions == sorted(admissions)
    for w in (0.1, 0.5, 1.0, 3.0):
        bound = math.ceil(rate * w) + 1
        j = 0
        for i, start in enumerate(admissions):
            while j < len(admissions) and admissions[j] < start + w:
                j += 1
            assert j - i <= bound


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60, deadline=None)
@given(
    retries=st.integers(0, 3),
    n_values=st.integers(1, 4),
    succeed_at=st.one_of(st.none(), st.integers(0, 15)),
)
def test_fallback_order_and_attempt_counts(
    retries: int, n_values: int, succeed_at: int | None
) -> None:
    values = [f"v{i}" for i in range(n_values)]
    calls: list[str] = []

    @opero(cache=False, retries=retries, arg_fallback="model")
    def ask(model: list[str]) -> str:
        calls.append(model)  # type: ignore[arg-type]
        if succeed_at is not None and len(calls) - 1 == succeed_at:
            return f"ok:{model}"
        raise ConnectionError(model)

    total = (retries + 1) * n_values
    expected_order = values * (retries + 1)
    with set_testing():
        if succeed_at is not None and succeed_at < total:
            assert ask(values) == f"ok:{expected_order[succeed_at]}"
            assert calls == expected_order[: succeed_at + 1]
        else:
            try:
                ask(values)
            except AllFailedError as group:
                assert len(group.exceptions) == total
            except ConnectionError:
                assert n_values == 1  # no fallback in play: the last original exception
            else:
                raise AssertionError("every attempt failed but nothing was raised")
            assert calls == expected_order


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=4), children, max_size=4)
        | st.tuples(children, children)
        | st.frozensets(st.integers(), max_size=4)
    ),
    max_leaves=20,
)


@given(json_like)
def test_keys_equal_for_equal_calls(value: object) -> None:
    assert encode(value) == encode(copy.deepcopy(value))


@given(json_like, json_like)
def test_different_encodings_only_for_different_values(a: object, b: object) -> None:
    if encode(a) == encode(b):
        assert a == b


@given(st.dictionaries(st.text(max_size=4), st.integers(), max_size=8))
def test_dict_order_never_matters(d: dict[str, int]) -> None:
    reordered = dict(reversed(list(d.items())))
    assert encode(d) == encode(reordered)


@given(st.lists(st.integers(), max_size=5))
def test_unsupported_member_is_unkeyable(items: list[int]) -> None:
    try:
        encode([*items, object()])
    except Unkeyable:
        return
    raise AssertionError("an object() was encoded")
