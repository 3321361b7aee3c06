"""A rate limit that learns what the server accepts (``rate_limit=opero.Adaptive(...)``).

Admissions are evenly spaced at the current learned rate (no bursts), on the schedule of a
:class:`~opero.limits.rate.RateLimiter` whose admissions each hold ``1 / rate`` seconds, so
a cancelled wait gives its time back as with a fixed limit. The rate moves as TCP CUBIC and
AWS's adaptive retry mode move theirs:

- a throttling signal (a failure with status 429, or one carrying a server-directed delay)
  multiplies the rate by ``decrease`` (0.7), remembering the rate it had (``w_max``). One
  burst of 429s counts once: a signal is ignored while less than the spacing before the last
  decrease x the attempts then in flight (booked and not yet heard of) has passed since it.
- a success sets the rate to ``w_max + scale * (t - K)^3`` (``t``: seconds since the last
  decrease, ``K`` the time the curve takes back to ``w_max``): quickly back towards
  ``w_max``, slowly near it, then faster beyond it; never above ``max``, nor above twice
  ``w_max`` or the rate admissions were actually made at, whichever is higher (a limiter
  left idle does not come back at a rate it never tried); a success never lowers the rate.
  Never below ``min``.
- a success whose result carries rate-limit headers (``remaining`` requests until ``reset``)
  spaces admissions at least ``reset / (remaining + 1)`` apart until the reset, the first
  no sooner than that after the response, and the rate is not raised above what they allow
  meanwhile.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any

from opero.core.clock import CLOCK
from opero.core.ratelimit_headers import headers_of_result, pace_of
from opero.core.signals import http_status, retry_after_of
from opero.limits.rate import RateLimiter
from opero.policy import Adaptive
from opero.rates import Limit

__all__ = ["AdaptiveLimiter", "Learner", "throttled"]

BUCKET = 0.5  #: seconds over which the admission rate is measured
SMOOTHING = 0.8  #: weight of the newest measurement (as botocore's rate clocker)


def throttled(ok: bool, outcome: Any) -> bool:
    """Whether an attempt's outcome is a throttling signal: a failure with status 429, or
    one carrying a server-directed delay."""
    if ok or not isinstance(outcome, BaseException):
        return False
    return http_status(outcome) == 429 or retry_after_of(outcome) is not None


class Learner:
    """The learned rate, as a pure object: every method takes the time (seconds)."""

    __slots__ = (
        "_bucket",
        "_count",
        "ceiling",
        "decreased",
        "guard",
        "k",
        "measured",
        "origin",
        "policy",
        "rate",
        "w_max",
    )

    def __init__(self, policy: Adaptive) -> None:
        self.policy = policy
        self.rate = policy.start
        #: the curve: ``w_max + scale * (t - origin - k)^3``; at first it rises from start
        self.w_max = policy.start
        self.k = 0.0
        self.origin: float | None = None  # set by the first admission
        self.decreased = -math.inf  #: when the rate was last decreased
        self.guard = 0.0  #: seconds after that during which signals are ignored
        self.ceiling = (math.inf, -math.inf)  #: (rate, until): what rate headers allow
        self.measured = 0.0  #: admissions per second, smoothed
        self._bucket: float | None = None
        self._count = 0

    def admitted(self, at: float) -> None:
        """An admission was booked at ``at`` (measures the rate actually used)."""
        if self.origin is None:
            self.origin = at
        bucket = math.floor(at / BUCKET) * BUCKET
        if self._bucket is None:
            self._bucket = bucket
        self._count += 1
        if bucket > self._bucket:
            current = self._count / (bucket - self._bucket)
            self.measured = SMOOTHING * current + (1 - SMOOTHING) * self.measured
            self._count = 0
            self._bucket = bucket

    def signal(self, now: float, in_flight: int) -> bool:
        """A throttling signal at ``now`` with ``in_flight`` attempts out; whether it
        lowered the rate (False: it belongs to the burst already counted)."""
        if now - self.decreased < self.guard:
            return False
        policy = self.policy
        self.guard = max(in_flight, 1) / self.rate
        self.decreased = self.origin = now
        self.w_max = self.rate
        self.k = (self.w_max * (1 - policy.decrease) / policy.scale) ** (1 / 3)
        self.rate = max(policy.min, self.rate * policy.decrease)
        return True

    def success(self, now: float) -> None:
        """A success at ``now``: the rate follows the curve up (never down)."""
        origin = self.origin if self.origin is not None else now
        target = self.w_max + self.policy.scale * (now - origin - self.k) ** 3
        top = self.policy.max
        ceiling, until = self.ceiling
        if now < until and (top is None or ceiling < top):
            top = ceiling
        if top is not None and target > top:
            target = top
        if target > self.rate:
            self.rate = min(target, max(self.rate, 2 * max(self.measured, self.w_max)))

    def paced(self, now: float, spacing: float, reset: float) -> None:
        """Headers read at ``now``: ``spacing`` between admissions for ``reset`` seconds."""
        self.ceiling = (1 / spacing, now + reset)

    def spacing(self, now: float) -> float:
        """Seconds between admissions at ``now``."""
        ceiling, until = self.ceiling
        if now < until and ceiling < self.rate:
            return 1 / ceiling
        return 1 / self.rate


class AdaptiveLimiter:
    """Evenly spaced admissions at a rate learned from the outcomes it hears."""

    __slots__ = ("_in_flight", "_lock", "_schedule", "learner", "limits", "listens", "policy")

    def __init__(self, policy: Adaptive) -> None:
        self.policy = policy
        self.limits: tuple[Limit, ...] = ()
        self.listens = True
        self.learner = Learner(policy)
        #: a schedule in seconds: an admission of cost ``c`` holds ``c`` seconds of it
        self._schedule = RateLimiter((Limit(1.0),))
        self._in_flight = 0  #: admissions booked and not yet heard of nor given back
        self._lock = threading.Lock()

    @property
    def rate(self) -> float:
        """The learned rate (admissions per second)."""
        return self.learner.rate

    @property
    def learned_rate(self) -> float:
        return self.learner.rate

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float:
        with self._lock:
            at = self._schedule.reserve(now, (self.learner.spacing(now),))
            self.learner.admitted(at)
            self._in_flight += 1
            return at

    def peek(self, now: float, costs: Sequence[float] | None = None) -> float:
        with self._lock:
            return self._schedule.peek(now, (self.learner.spacing(now),))

    def release(self, at: float) -> None:
        with self._lock:
            self._schedule.release(at)
            self._in_flight = max(0, self._in_flight - 1)

    def heard(self, ok: bool, outcome: Any, costs: Sequence[float] | None = None) -> None:
        """The outcome of an attempt this limiter admitted."""
        signal = throttled(ok, outcome)
        pace = pace_of(headers_of_result(outcome, self.policy.headers_of)) if ok else None
        now = CLOCK.monotonic()
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            learner = self.learner
            if signal:
                learner.signal(now, self._in_flight)
            elif ok:
                if pace is not None:
                    learner.paced(now, pace.spacing, pace.reset)
                    self._schedule.hold((now + pace.spacing,))
                learner.success(now)

    def seed(self, rate: float) -> None:
        """Continue from ``rate`` (learned elsewhere: the shared rate of a Redis limiter)."""
        with self._lock:
            learner = self.learner
            learner.rate = learner.w_max = rate
            learner.k = 0.0
            learner.origin = CLOCK.monotonic()

    def __repr__(self) -> str:
        return f"AdaptiveLimiter({self.policy!r}, rate={self.learner.rate:.3g}/s)"
