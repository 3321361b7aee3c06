"""A rate limit shared by every process (and host) that uses the same Redis.

GCRA with no burst allowance, atomic on the server: a Lua script reads the server's clock,
books the next admission ``max(now, tat)`` and moves the theoretical arrival time ``tat``
one interval on; the caller waits until its admission. Admissions are evenly spaced for all
clients together, whichever host they run on. If Redis cannot be reached, the limiter
falls back to a per-process limit (reported with an ``OperoBackendWarning``) and returns to
Redis once the server answers again.
"""

from __future__ import annotations

from typing import Any

from opero.backends.redis.client import (
    RedisHealth,
    async_client,
    redis_errors,
    resolve_url,
    sync_client,
)
from opero.core.health import BackendDown, report_backend_failure
from opero.limits.rate import RateLimiter

__all__ = ["RedisRateLimiter"]

# KEYS[1]: the limiter's key. ARGV[1]: interval in microseconds.
# Returns {wait_us, booked_tat, previous_tat, corrupt} with times in server microseconds.
# A stored state that is not a number, or lies more than 24 hours ahead, is corrupt: reset.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local raw = redis.call('GET', KEYS[1])
local tat = 0
local corrupt = 0
if raw then
  tat = tonumber(raw)
  if tat == nil or tat ~= tat or tat > now + 86400000000 then
    tat = 0
    corrupt = 1
  end
end
local at = math.max(now, tat)
local new_tat = at + interval
local ttl = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl)
return {string.format('%.0f', at - now), string.format('%.0f', new_tat),
        string.format('%.0f', at), corrupt}
"""

# Give a booked admission back if no later one was booked since (a cancelled wait).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""


class RedisRateLimiter:
    """``reserve``/``release`` like :class:`~opero.limits.rate.RateLimiter`, on Redis."""

    def __init__(self, rate: float, url: str | None, key: str, owner: str | None = None) -> None:
        self.rate = rate
        self.interval_us = max(1, round(1_000_000 / rate))
        self.url = resolve_url(url)
        self.key = key
        self.local = RateLimiter(rate)  # used while Redis is unreachable
        self.health = RedisHealth(self.url, "redis rate limit", owner)
        self.errors = redis_errors()
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *self.errors)
        self._booked: dict[float, tuple[str, str]] = {}

    def _booked_at(self, now: float, reply: list[Any]) -> float:
        wait_us, new_tat, at, corrupt = (int(x) for x in reply)
        if corrupt:
            report_backend_failure(
                "redis rate limit",
                "read",
                ValueError(f"the state of {self.key!r} was corrupt or over 24 h ahead: reset"),
                name=self.health.owner,
                location=self.health.location,
            )
        booked = now + wait_us / 1_000_000
        self._booked[booked] = (str(new_tat), str(at))
        if len(self._booked) > 1000:  # only recent bookings can still be released
            self._booked.pop(next(iter(self._booked)))
        return booked

    def reserve(self, now: float) -> float:
        """The local (monotonic) time of the next admission booked on the server."""
        try:
            self.health.check()
            reply = sync_client(self.url).eval(_RESERVE, 1, self.key, self.interval_us)
        except BackendDown:
            return self.local.reserve(now)
        except self.errors as exc:
            self.health.failed("reserve", exc)
            return self.local.reserve(now)
        self.health.ok()
        return self._booked_at(now, reply)

    async def reserve_async(self, now: float) -> float:
        try:
            self.health.check()
            reply = await (await async_client(self.url)).eval(
                _RESERVE, 1, self.key, self.interval_us
            )
        except BackendDown:
            return self.local.reserve(now)
        except self.errors as exc:
            self.health.failed("reserve", exc)
            return self.local.reserve(now)
        self.health.ok()
        return self._booked_at(now, reply)

    def release(self, at: float) -> None:
        booked = self._booked.pop(at, None)
        if booked is None:
            self.local.release(at)
            return
        try:
            self.health.check()
            sync_client(self.url).eval(_RELEASE, 1, self.key, *booked)
        except self.skip:
            pass
