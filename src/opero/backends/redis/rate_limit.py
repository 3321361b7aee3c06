"""A rate limit shared by every process (and host) that uses the same Redis.

GCRA with no burst allowance, atomic on the server: a Lua script reads the server's clock and
books each attempt the way :class:`~opero.limits.rate.RateLimiter` does in memory (see
:mod:`opero.backends.redis.rate_scripts`): every limit's schedule is a run of stretches
``[at, at + cost / rate)`` that never overlap, a cancelled wait gives its stretches back
wherever they lie, and the next booking takes the earliest time every limit has room for.
With several limits each catches up time it lost to the others, within the windows of its
period (a window log per limit, on the server). Admissions are spaced for all clients
together, whichever host they run on. :meth:`RedisRateLimiter.peek` runs the same script
without booking; :meth:`RedisRateLimiter.heard` moves a schedule by what a successful attempt
really used (``Limit(actual=)``).

If Redis cannot be reached, the limiter falls back to a per-process limit (reported with an
``OperoBackendWarning``) and returns to Redis once the server answers again. The two
schedules are joined, never both spent: the local one starts after this process's bookings
on the server, and, once the server is back (perhaps restarted, its schedule lost), the
server books nothing for this process before the local schedule's end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from opero.backends.redis.client import (
    RedisHealth,
    async_client,
    redis_errors,
    resolve_url,
    sync_client,
)
from opero.backends.redis.rate_returns import ADJUST, RELEASE
from opero.backends.redis.rate_scripts import RESERVE
from opero.core.clock import CLOCK
from opero.core.health import BackendDown, report_backend_failure
from opero.limit_spec import Limit
from opero.limits.rate import RateLimiter

__all__ = ["RedisRateLimiter"]

MAX_BOOKED = 1000  #: admissions remembered for giving back (only recent ones can be)


def free_key(key: str) -> str:
    """Where the given-back stretches of the schedule ``key`` are kept (a name that a
    listing of the limiter's own keys does not catch)."""
    head, sep, tail = key.partition(":ratelimit:")
    return f"{head}:ratelimit-free:{tail}" if sep else f"{key}-free"


def log_key(key: str) -> str:
    """Where the window log of the schedule ``key`` is kept (as :func:`free_key`)."""
    head, sep, tail = key.partition(":ratelimit:")
    return f"{head}:ratelimit-log:{tail}" if sep else f"{key}-log"


class RedisRateLimiter:
    """``reserve``/``release`` like :class:`~opero.limits.rate.RateLimiter`, on Redis."""

    def __init__(
        self,
        limits: float | Sequence[Limit],
        url: str | None,
        key: str,
        owner: str | None = None,
    ) -> None:
        self.local = RateLimiter(limits)  # used while Redis is unreachable
        self.limits = self.local.limits
        self.listens = self.local.listens
        self.rate = self.limits[0].rate
        #: microseconds per unit, per limit
        self.steps_us = [1_000_000 / limit.rate for limit in self.limits]
        self.unit_args = [max(1, round(step)) for step in self.steps_us]
        self.url = resolve_url(url)
        self.key = key
        self.keys = [key] + [f"{key}:{i}" for i in range(1, len(self.limits))]
        self.script_keys = [
            *self.keys,
            *(free_key(k) for k in self.keys),
            *(log_key(k) for k in self.keys),
        ]
        #: per limit: its period (microseconds) and its budget (units per period)
        self.windows = [round(p * 1_000_000) for p in self.local.periods] + [
            repr(limit.rate * limit.period) for limit in self.limits
        ]
        self.health = RedisHealth(self.url, "redis rate limit", owner)
        self.errors = redis_errors()
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *self.errors)
        #: local admission time -> what to give back on the server if its wait is cancelled
        self._booked: dict[float, list[str]] = {}
        #: per limit, the local time this process's bookings on the server reach
        self._server_end = [float("-inf")] * len(self.limits)
        self._pending: set[asyncio.Future[None]] = set()  # late give-backs under way

    def _args(
        self, now: float, costs: Sequence[float] | None, peek: bool = False
    ) -> list[str | int]:
        if costs is None:
            moves = self.unit_args
        else:
            moves = [round(c * step) for c, step in zip(costs, self.steps_us, strict=True)]
        # the local schedule (booked while the server was away) is not spent twice
        floors = [round((end - now) * 1e6) if end > now else 0 for end in self.local.schedule_end]
        units = [1.0] * len(self.limits) if costs is None else costs
        return [
            *self.script_keys,
            *moves,
            *floors,
            *(repr(float(u)) for u in units),
            *self.windows,
            "1" if peek else "0",
        ]

    def _booked_at(self, now: float, reply: list[Any], costs: Sequence[float] | None) -> float:
        wait_us, corrupt, at_us = (int(x) for x in reply[:3])
        spans = [x.decode() if isinstance(x, bytes) else str(x) for x in reply[3:]]
        if corrupt:
            report_backend_failure(
                "redis rate limit",
                "read",
                ValueError(f"the state of {self.key!r} was corrupt or over 24 h ahead: reset"),
                name=self.health.owner,
                location=self.health.location,
            )
        booked = now + wait_us / 1_000_000
        for i in range(len(self.limits)):
            end = booked + (int(spans[3 * i + 1]) - at_us) / 1_000_000
            self._server_end[i] = max(self._server_end[i], end)
        if wait_us > 0:
            units = [1.0] * len(self.limits) if costs is None else costs
            # per limit start, end, epoch; then the admission and its units, for its windows
            self._booked[booked] = [*spans, str(at_us), *(repr(float(u)) for u in units)]
            if len(self._booked) > MAX_BOOKED:
                self._booked.pop(next(iter(self._booked)))
        return booked

    def _local(self, now: float, costs: Sequence[float] | None) -> float:
        """Book in this process alone, after what it booked on the server."""
        self.local.hold(self._server_end)
        return self.local.reserve(now, costs)

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float:
        """The local (monotonic) time of the next admission booked on the server."""
        try:
            self.health.check()
            reply = sync_client(self.url).eval(
                RESERVE, len(self.script_keys), *self._args(now, costs)
            )
        except BackendDown:
            return self._local(now, costs)
        except self.errors as exc:
            self.health.failed("reserve", exc)
            return self._local(now, costs)
        self.health.ok()
        return self._booked_at(now, reply, costs)

    def peek(self, now: float, costs: Sequence[float] | None = None) -> float:
        """When an admission booked on the server now would be, without booking it."""
        try:
            self.health.check()
            reply = sync_client(self.url).eval(
                RESERVE, len(self.script_keys), *self._args(now, costs, peek=True)
            )
        except BackendDown:
            return self._local_peek(now, costs)
        except self.errors as exc:
            self.health.failed("peek", exc)
            return self._local_peek(now, costs)
        self.health.ok()
        return now + int(reply[0]) / 1_000_000

    def _local_peek(self, now: float, costs: Sequence[float] | None) -> float:
        self.local.hold(self._server_end)
        return self.local.peek(now, costs)

    def heard(
        self, ok: bool, outcome: object, costs: Sequence[float] | None, sent: float | None = None
    ) -> None:
        """A successful attempt really used what each ``Limit(actual=)`` says: move that
        limit's schedule on the server (here while the server is away)."""
        if not ok:
            return
        found = self.local.corrections(outcome, costs)
        if not found:
            return
        args = ["0", "0", "0"] * len(self.limits)
        for i, estimate, used in found:
            move = round((used - estimate) * self.steps_us[i])
            args[3 * i : 3 * i + 3] = [str(move), repr(estimate), repr(used)]
        try:
            self.health.check()
            sync_client(self.url).eval(ADJUST, len(self.script_keys), *self.script_keys, *args)
        except BackendDown:
            self.local.correct(found, CLOCK.monotonic())
        except self.errors as exc:
            self.health.failed("correct", exc)
            self.local.correct(found, CLOCK.monotonic())
        else:
            self.health.ok()

    async def reserve_async(self, now: float, costs: Sequence[float] | None = None) -> float:
        try:
            self.health.check()
            client = await async_client(self.url)
            call = asyncio.ensure_future(
                client.eval(RESERVE, len(self.script_keys), *self._args(now, costs))
            )
            try:
                # shielded: a cancellation reaches this caller, not the client mid-reply
                reply = await asyncio.shield(call)
            except asyncio.CancelledError:
                call.add_done_callback(lambda done: self._cancelled_meanwhile(now, done, costs))
                raise
        except BackendDown:
            return self._local(now, costs)
        except self.errors as exc:
            self.health.failed("reserve", exc)
            return self._local(now, costs)
        self.health.ok()
        return self._booked_at(now, reply, costs)

    def _cancelled_meanwhile(
        self, now: float, call: asyncio.Future[Any], costs: Sequence[float] | None
    ) -> None:
        """The caller was cancelled while its booking was being made: give it back."""
        if call.cancelled() or call.exception() is not None:
            return
        booked = self._booked.pop(self._booked_at(now, call.result(), costs), None)
        if booked is not None:
            task = asyncio.ensure_future(self._release_async(booked))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _release_async(self, booked: list[str]) -> None:
        try:
            self.health.check()
            client = await async_client(self.url)
            await client.eval(RELEASE, len(self.script_keys), *self.script_keys, *booked)
        except self.skip:
            pass

    def release(self, at: float) -> None:
        booked = self._booked.pop(at, None)
        if booked is None:
            self.local.release(at)
            return
        try:
            self.health.check()
            sync_client(self.url).eval(RELEASE, len(self.script_keys), *self.script_keys, *booked)
        except self.skip:
            pass
