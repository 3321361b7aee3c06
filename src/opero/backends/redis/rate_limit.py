"""A rate limit shared by every process (and host) that uses the same Redis.

GCRA with no burst allowance, atomic on the server: a Lua script reads the server's clock,
books the next admission ``max(now, tat of every limit)`` and moves each limit's theoretical
arrival time on by the attempt's cost under it (one interval for an unweighted limit); the
caller waits until its admission. Admissions are evenly spaced for all
clients together, whichever host they run on. If Redis cannot be reached, the limiter
falls back to a per-process limit (reported with an ``OperoBackendWarning``) and returns to
Redis once the server answers again.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from opero.rates import Limit

__all__ = ["RedisRateLimiter"]

# KEYS: one key per limit. ARGV[i]: how far limit i's schedule moves for this attempt (its
# cost times its interval per unit, in microseconds). The attempt is admitted when every
# limit allows, and every schedule moves on from that time, all in one atomic script.
# Returns {wait_us, corrupt, at, new_tat...} with times in server microseconds. A stored
# state that is not a number, or lies more than 24 hours ahead, is corrupt: reset.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local at = now
local corrupt = 0
for i = 1, #KEYS do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    local tat = tonumber(raw)
    if tat == nil or tat ~= tat or tat > now + 86400000000 then
      corrupt = 1
    elseif tat > at then
      at = tat
    end
  end
end
local out = {string.format('%.0f', at - now), corrupt, string.format('%.0f', at)}
for i = 1, #KEYS do
  local new_tat = at + tonumber(ARGV[i])
  local ttl = math.ceil((new_tat - now) / 1000) + 1000
  redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', ttl)
  out[#out + 1] = string.format('%.0f', new_tat)
end
return out
"""

# Give a booked admission back (a cancelled wait): each schedule not moved since returns to
# the admission time. ARGV[1]: that time; ARGV[i + 1]: the schedule booked for KEYS[i].
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('SET', KEYS[i], ARGV[1], 'KEEPTTL')
  end
end
return 1
"""


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
        self.rate = self.limits[0].rate
        #: microseconds per unit, per limit
        self.steps_us = [1_000_000 / limit.rate for limit in self.limits]
        self.unit_args = [max(1, round(step)) for step in self.steps_us]
        self.url = resolve_url(url)
        self.key = key
        self.keys = [key] + [f"{key}:{i}" for i in range(1, len(self.limits))]
        self.health = RedisHealth(self.url, "redis rate limit", owner)
        self.errors = redis_errors()
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *self.errors)
        self._booked: dict[float, list[str]] = {}

    def _args(self, costs: Sequence[float] | None) -> list[Any]:
        if costs is None:
            return [*self.keys, *self.unit_args]
        moves = [round(c * step) for c, step in zip(costs, self.steps_us, strict=True)]
        return [*self.keys, *moves]

    def _booked_at(self, now: float, reply: list[Any]) -> float:
        wait_us, corrupt, at, *new_tats = (int(x) for x in reply)
        if corrupt:
            report_backend_failure(
                "redis rate limit",
                "read",
                ValueError(f"the state of {self.key!r} was corrupt or over 24 h ahead: reset"),
                name=self.health.owner,
                location=self.health.location,
            )
        booked = now + wait_us / 1_000_000
        self._booked[booked] = [str(at), *(str(t) for t in new_tats)]
        if len(self._booked) > 1000:  # only recent bookings can still be released
            self._booked.pop(next(iter(self._booked)))
        return booked

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float:
        """The local (monotonic) time of the next admission booked on the server."""
        try:
            self.health.check()
            reply = sync_client(self.url).eval(_RESERVE, len(self.keys), *self._args(costs))
        except BackendDown:
            return self.local.reserve(now, costs)
        except self.errors as exc:
            self.health.failed("reserve", exc)
            return self.local.reserve(now, costs)
        self.health.ok()
        return self._booked_at(now, reply)

    async def reserve_async(self, now: float, costs: Sequence[float] | None = None) -> float:
        try:
            self.health.check()
            reply = await (await async_client(self.url)).eval(
                _RESERVE, len(self.keys), *self._args(costs)
            )
        except BackendDown:
            return self.local.reserve(now, costs)
        except self.errors as exc:
            self.health.failed("reserve", exc)
            return self.local.reserve(now, costs)
        self.health.ok()
        return self._booked_at(now, reply)

    def release(self, at: float) -> None:
        booked = self._booked.pop(at, None)
        if booked is None:
            self.local.release(at)
            return
        try:
            self.health.check()
            sync_client(self.url).eval(_RELEASE, len(self.keys), *self.keys, *booked)
        except self.skip:
            pass
