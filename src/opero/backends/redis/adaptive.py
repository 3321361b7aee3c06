"""An ``opero.Adaptive`` rate limit whose learned rate and schedule every process shares.

The state of :class:`~opero.limits.adaptive.AdaptiveLimiter` lives in Redis and moves there,
one Lua script per reservation and one per outcome, on the server's clock: the learned rate
and its CUBIC curve, the schedule's end, the header pacing, the successes of the last
second (the rate the server accepts) and, per process, the attempts in flight (a process not
heard of for a minute no longer counts). A cancelled wait gives its admission back: the last
one shortens the schedule, an earlier one is kept and joins it when the ones after it are
given back too.

If Redis cannot be reached, the limiter goes on alone in this process (reported with an
``OperoBackendWarning``), from the rate last learned together and after what this process
booked on the server, and returns to Redis once the server answers again, its local bookings
kept clear of there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

from opero.backends.redis.client import RedisHealth, redis_errors, resolve_url, sync_client
from opero.core.health import BackendDown
from opero.core.ratelimit_headers import headers_of_result, pace_of
from opero.limit_spec import Limit
from opero.limits.adaptive import PROBE, AdaptiveLimiter, throttled
from opero.policy import Adaptive

__all__ = ["RedisAdaptiveLimiter"]

IDLE_MS = 86_400_000  #: the shared state is forgotten after a day unused

# KEYS: state hash, given-back stretches (zset by end), in-flight per process (hash), when
# each process was last heard of (hash), recent successes (zset by time). Times in server
# microseconds; rates per second.
_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local f = redis.call('HMGET', KEYS[1], 'rate', 'wmax', 'k', 'origin', 'dec', 'guard',
  'tat', 'floor', 'hs', 'hu')
local s = {}
local names = {'rate', 'wmax', 'k', 'origin', 'dec', 'guard', 'tat', 'floor', 'hs', 'hu'}
for i, name in ipairs(names) do s[name] = tonumber(f[i]) end
if s.rate == nil or s.rate ~= s.rate or s.rate <= 0 then
  s = {rate = tonumber(ARGV[2]), wmax = tonumber(ARGV[2]), k = 0, tat = 0, floor = 0,
       hs = 0, hu = 0, dec = -1, guard = 0}
end
local function save()
  local out = {}
  for _, name in ipairs(names) do
    if s[name] ~= nil then out[#out + 1] = name; out[#out + 1] = tostring(s[name]) end
  end
  redis.call('HSET', KEYS[1], unpack(out))
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], IDLE_MS) end
end
local function flight(delta)
  local n = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') + delta
  if n < 0 then n = 0 end
  redis.call('HSET', KEYS[3], ARGV[1], n)
  redis.call('HSET', KEYS[4], ARGV[1], now)
end
local function spacing()
  local gap = 1000000 / s.rate
  if now < s.hu and s.hs > gap then gap = s.hs end
  return gap
end
""".replace("IDLE_MS", str(IDLE_MS))

# ARGV: process token, start rate, floor (us from now: this process's local bookings).
# Returns {wait_us, at, end, rate}.
RESERVE = (
    _COMMON
    + """
if s.origin == nil then s.origin = now end
local at = math.max(now, s.tat, s.floor, now + tonumber(ARGV[3]))
local stop = at + spacing()
s.tat = stop
flight(1)
save()
return {tostring(at - now), tostring(at), tostring(stop), tostring(s.rate)}
"""
)

# ARGV: process token, start, at, end of the stretch given back.
RELEASE = (
    _COMMON
    + """
flight(-1)
local start, stop = tonumber(ARGV[3]), tonumber(ARGV[4])
if stop == s.tat then
  s.tat = start
  while true do
    local before = redis.call('ZRANGEBYSCORE', KEYS[2], s.tat, s.tat, 'LIMIT', 0, 1)
    if #before == 0 then break end
    redis.call('ZREM', KEYS[2], before[1])
    s.tat = tonumber(string.match(before[1], '^(%S+)'))
  end
elseif stop < s.tat and stop > now then
  redis.call('ZADD', KEYS[2], stop, ARGV[3] .. ' ' .. ARGV[4])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
save()
return tostring(s.rate)
"""
)

# ARGV: process token, start, kind (1 success, 2 throttled, 0 other), max (0: none), min,
# decrease, scale, probe, header remaining (-1: none), reset and its latest (us). Requests
# left: remaining less every process's attempts in flight; none: wait for the reset.
HEARD = (
    _COMMON
    + """
flight(-1)
local kind = tonumber(ARGV[3])
local function accepted()
  local window = math.max(1000000, 10000000 / s.rate)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - window)
  return redis.call('ZCARD', KEYS[5]) * 1000000 / window
end
local function busy()
  local n = 0
  local seen = redis.call('HGETALL', KEYS[4])
  for i = 1, #seen, 2 do
    if tonumber(seen[i + 1]) >= now - 60000000 then
      n = n + tonumber(redis.call('HGET', KEYS[3], seen[i]) or '0')
    end
  end
  return n
end
if kind == 2 and now - s.dec >= s.guard then
  local got = accepted()
  s.guard = math.max(busy(), 1) * 1000000 / s.rate
  s.dec, s.origin = now, now
  s.wmax = s.rate
  if got > 0 and got < s.rate then s.wmax = got end
  local decrease, scale = tonumber(ARGV[6]), tonumber(ARGV[7])
  s.k = (s.wmax * (1 - decrease) / scale) ^ (1 / 3)
  s.rate = math.max(tonumber(ARGV[5]), s.wmax * decrease)
elseif kind == 1 then
  redis.call('ZADD', KEYS[5], now, now .. ':' .. ARGV[1] .. ':' .. math.random())
  local remaining = tonumber(ARGV[9])
  if remaining >= 0 then
    local left = math.max(remaining - busy(), 0)
    local reset = tonumber(ARGV[10])
    s.hs, s.hu = reset / (left + 1), now + reset
    if left == 0 then
      s.floor = math.max(s.floor, now + tonumber(ARGV[11]))
    else
      s.floor = math.max(s.floor, now + s.hs)
    end
  end
  if s.origin == nil then s.origin = now end
  local elapsed = (now - s.origin) / 1000000
  local target = s.wmax + tonumber(ARGV[7]) * (elapsed - s.k) ^ 3
  local top = tonumber(ARGV[4])
  if top <= 0 then top = math.huge end
  if now < s.hu and s.hs > 0 and 1000000 / s.hs < top then top = 1000000 / s.hs end
  if target > top then target = top end
  if target > s.rate then
    local growth = 2
    if s.dec >= 0 then growth = tonumber(ARGV[8]) end
    local used = math.max(accepted(), s.wmax)
    s.rate = math.min(target, math.max(s.rate, growth * used))
  end
end
save()
return tostring(s.rate)
"""
)


class RedisAdaptiveLimiter:
    """:class:`~opero.limits.adaptive.AdaptiveLimiter` on Redis (see the module docstring)."""

    def __init__(self, policy: Adaptive, url: str | None, key: str, owner: str | None = None):
        self.policy = policy
        self.limits: tuple[Limit, ...] = ()
        self.listens = True
        self.local = AdaptiveLimiter(policy)  # used while Redis is unreachable
        self.url = resolve_url(url)
        self.key = key
        self.keys = [key, *(f"{key}:{part}" for part in ("free", "flight", "seen", "oks"))]
        self.token = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.health = RedisHealth(self.url, "redis rate limit", owner)
        self.errors = redis_errors()
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *self.errors)
        self.rate = policy.start  #: the learned rate, as last heard from the server
        self._booked: dict[float, tuple[str, str]] = {}  # local time -> stretch on the server
        self._server_end = float("-inf")  # local time this process's server bookings reach
        self._local_out = 0  # local bookings not yet heard of
        self._alone = False

    def _eval(self, script: str, *args: Any) -> Any:
        self.health.check()
        try:
            reply = sync_client(self.url).eval(script, len(self.keys), *self.keys, *args)
        except self.errors as exc:
            self.health.failed("adaptive rate limit", exc)
            raise BackendDown(self.health.location) from exc
        self.health.ok()
        return reply

    def _go_local(self) -> AdaptiveLimiter:
        if not self._alone:
            self._alone = True
            self.local.seed(self.rate)
        return self.local

    def reserve(self, now: float, costs: Sequence[float] | None = None) -> float:
        local_end = max(self.local.booked_until(), now)
        try:
            floor = round((local_end - now) * 1e6)
            reply = self._eval(RESERVE, self.token, self.policy.start, floor)
        except BackendDown:
            local = self._go_local()
            local.hold(self._server_end)
            self._local_out += 1
            return local.reserve(now, costs)
        self._alone = False
        wait, at, end, rate = (x.decode() if isinstance(x, bytes) else str(x) for x in reply)
        self.rate = float(rate)
        booked = now + int(float(wait)) / 1e6
        self._server_end = max(self._server_end, booked + (float(end) - float(at)) / 1e6)
        if booked > now:
            self._booked[booked] = (at, end)
            if len(self._booked) > 1000:
                self._booked.pop(next(iter(self._booked)))
        return booked

    def peek(self, now: float, costs: Sequence[float] | None = None) -> float:
        return max(now, self._server_end) if not self._alone else self.local.peek(now, costs)

    def release(self, at: float) -> None:
        stretch = self._booked.pop(at, None)
        if stretch is None:
            self._local_out = max(0, self._local_out - 1)
            self.local.release(at)
            return
        try:
            self._eval(RELEASE, self.token, self.policy.start, *stretch)
        except BackendDown:
            pass

    def moved(self, at: float) -> float:
        """Where a local booking moved (see ``AdaptiveLimiter.moved``); bookings on the
        server stay where they were booked."""
        return at if at in self._booked else self.local.moved(at)

    def heard(
        self,
        ok: bool,
        outcome: Any,
        costs: Sequence[float] | None = None,
        sent: float | None = None,
    ) -> None:
        if self._local_out > 0:
            self._local_out -= 1
            self.local.heard(ok, outcome, costs, sent)
            return
        kind = 2 if throttled(ok, outcome) else 1 if ok else 0
        pace = pace_of(headers_of_result(outcome, self.policy.headers_of)) if ok else None
        pace, p = self.local.newest.fresh(pace, sent), self.policy
        try:
            rate = self._eval(
                HEARD,
                self.token,
                p.start,
                kind,
                p.max or 0,
                p.min,
                p.decrease,
                p.scale,
                PROBE,
                *(pace.in_micros() if pace else (-1, 0, 0)),
            )
        except BackendDown:
            self.local.heard(ok, outcome, costs, sent)
            return
        self.rate = float(rate.decode() if isinstance(rate, bytes) else rate)

    @property
    def learned_rate(self) -> float:
        """The rate learned together (as the server has it now), else the last known."""
        if self._alone:
            return self.local.learned_rate
        try:
            self.health.check()
            found = sync_client(self.url).hget(self.key, "rate")
        except self.skip:
            return self.rate
        if found is not None:
            self.rate = float(found)
        return self.rate

    def __repr__(self) -> str:
        return f"RedisAdaptiveLimiter({self.policy!r}, key={self.key!r})"
