"""A rate limit that learns what the server accepts (``rate_limit=opero.Adaptive(...)``).

Admissions are evenly spaced at the current learned rate (no bursts): a new admission goes
to the first time, from now on, that is one spacing (``1 / rate``) from every admission
booked, so a rate that rose since they were booked is used at once (between them), and a
cancelled wait gives its admission back. The rate moves as TCP CUBIC and AWS's adaptive
retry mode move theirs:

- a throttling signal (a failure with status 429, or one carrying a server-directed delay)
  lowers the rate to ``decrease`` (0.7) x ``w_max``: the rate it had, or the rate of the
  successes of the last second if that is lower (what the server accepted, as botocore uses
  its measured rate). One burst counts once: a signal is ignored while less than the spacing
  before the last decrease x the attempts then in flight (booked and not yet heard of) has
  passed since it.
- a success sets the rate to ``w_max + scale * (t - K)^3`` (``t``: seconds since the last
  decrease, ``K`` the time the curve takes back to ``w_max``): quickly back towards
  ``w_max``, slowly near it, then faster beyond it. A success never lowers the rate, and
  raises it at most to ``max``, to twice ``w_max`` or the accepted rate (the first time), or,
  after a decrease, to ``PROBE`` x that (the curve probes, it does not leap: admissions are
  booked ahead, so a rate far above what is accepted would be spent before a 429 says so).
  Never below ``min``.
- a success whose result carries rate-limit headers (``remaining`` requests until ``reset``)
  spaces admissions at least ``reset / (left + 1)`` apart until the reset, the first no
  sooner than that after the response, and the rate is not raised above what they allow
  meanwhile. ``left`` is ``remaining`` less the attempts sent and not yet heard of (the
  server may have counted them after this answer was made). The admissions booked ahead
  beyond ``left`` wait for the reset, taken as late as the header's last digit allows, and
  so does the next one booked when nothing is left.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from opero.core.clock import CLOCK
from opero.core.ratelimit_headers import Newest, Pace, headers_of_result, pace_of
from opero.core.signals import http_status, retry_after_of
from opero.limit_spec import Limit
from opero.limits.schedule import Schedule
from opero.policy import Adaptive

__all__ = ["AdaptiveLimiter", "Learner", "throttled"]

PLATEAU = 0.98  #: the curve levels off at this x the rate at which the server said no
PROBE = 1.05  #: after a decrease: at most this x the rate the server was seen to accept


def throttled(ok: bool, outcome: Any) -> bool:
    """Whether an attempt's outcome is a throttling signal: a failure with status 429, or
    one carrying a server-directed delay."""
    if ok or not isinstance(outcome, BaseException):
        return False
    return http_status(outcome) == 429 or retry_after_of(outcome) is not None


class Learner:
    """The learned rate, as a pure object: every method takes the time (seconds)."""

    __slots__ = (
        "_oks",
        "ceiling",
        "decreased",
        "guard",
        "k",
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
        self._oks: deque[float] = deque()  #: when recent successes came back

    def started(self, at: float) -> None:
        """The first admission is booked at ``at``: the curve starts there."""
        if self.origin is None:
            self.origin = at

    def measure(self, now: float) -> None:
        """A success came back at ``now`` (measures the rate the server accepts)."""
        self._oks.append(now)

    def accepted(self, now: float) -> float:
        """Successes per second over the last second (or the last 10 spacings, if longer);
        0.0 before any."""
        oks = self._oks
        window = max(1.0, 10 / self.rate)
        while oks and oks[0] <= now - window:
            oks.popleft()
        return len(oks) / window

    def signal(self, now: float, in_flight: int) -> bool:
        """A throttling signal at ``now`` with ``in_flight`` attempts out; whether it
        lowered the rate (False: it belongs to the burst already counted)."""
        if now - self.decreased < self.guard:
            return False
        policy = self.policy
        accepted = self.accepted(now)
        self.guard = max(in_flight, 1) / self.rate
        self.decreased = now
        self.origin = now
        said_no = min(self.rate, accepted) if accepted > 0 else self.rate
        self.rate = max(policy.min, said_no * policy.decrease)
        self.w_max = said_no * PLATEAU  # the curve levels off just under it
        self.k = (max(self.w_max - self.rate, 0.0) / policy.scale) ** (1 / 3)
        return True

    def success(self, now: float) -> None:
        """A success at ``now``: the rate follows the curve up (never down); not while the
        attempts booked before the last decrease are still coming back."""
        origin = self.origin if self.origin is not None else now
        target = self.w_max + self.policy.scale * (now - origin - self.k) ** 3
        top = self.policy.max
        ceiling, until = self.ceiling
        if now < until and (top is None or ceiling < top):
            top = ceiling
        if top is not None and target > top:
            target = top
        if target > self.rate:
            used = max(self.accepted(now), self.w_max)
            # beyond the rate of a decrease, probe a little above what was accepted
            growth = PROBE if self.decreased > -math.inf else 2.0
            self.rate = min(target, max(self.rate, growth * used))

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

    __slots__ = (
        "_in_flight",
        "_lock",
        "_schedule",
        "learner",
        "limits",
        "listens",
        "newest",
        "policy",
    )

    def __init__(self, policy: Adaptive) -> None:
        self.policy = policy
        self.limits: tuple[Limit, ...] = ()
        self.listens = True
        self.learner = Learner(policy)
        self._schedule = Schedule()
        self._in_flight = 0  #: admissions booked and not yet heard of nor given back
        self.newest = Newest()  #: which answers' headers are news
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
            at = self._schedule.book(now, self.learner.spacing(now))
            self.learner.started(at)
            self._in_flight += 1
            return at

    def peek(self, now: float, costs: Sequence[float] | None = None) -> float:
        with self._lock:
            return self._schedule.fit(now, self.learner.spacing(now))

    def release(self, at: float) -> None:
        with self._lock:
            self._schedule.release(at)
            self._in_flight = max(0, self._in_flight - 1)

    def moved(self, at: float) -> float:
        """Where the admission booked as ``at`` is now: later if the rate fell before it
        was due (the admissions ahead moved apart to the new spacing)."""
        with self._lock:
            return self._schedule.where(at)

    def heard(
        self,
        ok: bool,
        outcome: Any,
        costs: Sequence[float] | None = None,
        sent: float | None = None,
    ) -> None:
        """The outcome of an attempt this limiter admitted (at ``sent``, if known)."""
        signal = throttled(ok, outcome)
        pace = pace_of(headers_of_result(outcome, self.policy.headers_of)) if ok else None
        now = CLOCK.monotonic()
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            learner = self.learner
            if signal:
                if learner.signal(now, self._unheard(now)):
                    self._schedule.respace(now, learner.spacing(now))
            elif ok:
                self._succeeded(now, self.newest.fresh(pace, sent))

    def _succeeded(self, now: float, pace: Pace | None) -> None:
        """A success at ``now`` (under the lock), with the pace its headers ask for."""
        learner, schedule = self.learner, self._schedule
        learner.measure(now)
        if pace is None:
            before = learner.spacing(now)
            learner.success(now)
            if learner.spacing(now) < before:
                schedule.respace(now, learner.spacing(now))
            return
        unheard = self._unheard(now)  # the server may have counted them since its answer
        learner.paced(now, pace.spacing(unheard), pace.reset)
        learner.success(now)
        after = 1 / learner.rate  # the spacing once the limit has reset
        schedule.paced(now, learner.spacing(now), pace.left(unheard), now + pace.late, after)

    def _unheard(self, now: float) -> int:
        """How many attempts were sent and not yet heard of (under the lock)."""
        return self._in_flight - self._schedule.ahead(now)

    def booked_until(self) -> float:
        """The latest admission booked (-inf: none)."""
        with self._lock:
            times = self._schedule.times
            return times[-1] if times else -math.inf

    def hold(self, until: float) -> None:
        """Admit nothing before ``until`` (time booked elsewhere: a shared schedule)."""
        with self._lock:
            self._schedule.floor = max(self._schedule.floor, until)

    def seed(self, rate: float) -> None:
        """Continue from ``rate`` (learned elsewhere: the shared rate of a Redis limiter)."""
        with self._lock:
            learner = self.learner
            learner.rate = learner.w_max = rate
            learner.k = 0.0
            learner.origin = CLOCK.monotonic()

    def __repr__(self) -> str:
        return f"AdaptiveLimiter({self.policy!r}, rate={self.learner.rate:.3g}/s)"
