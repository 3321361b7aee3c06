"""Cooldowns  through Redis: one circuit breaker per value for every process and
host using the Redis limiter.

Per value, four keys: ``fails`` (consecutive failed attempts), ``open`` (set for ``cooldown``
seconds when the breaker opens), ``tripped`` (opened and not yet closed: once ``open`` has
expired the value is half-open) and ``probe`` (the one half-open attempt, a lease). Every
change is one script, so two processes never both take the probe. If the server fails, the
breakers of this process decide alone until it answers again.
"""

from __future__ import annotations

from opero.backends.redis.client import RedisHealth, redis_errors, resolve_url, sync_client
from opero.core.breaker import Breakers
from opero.core.health import BackendDown
from opero.core.stats import Counters

__all__ = ["RedisBreakers"]

DAY_MS = 86_400_000

# KEYS: fails, open, tripped, probe. ARGV: cooldown_after, cooldown ms. Returns 1 if it opened.
_FAILED = """
local fails = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 86400000)
local probed = redis.call('DEL', KEYS[4])
if probed == 1 or fails >= tonumber(ARGV[1]) then
  local was = redis.call('EXISTS', KEYS[2])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('SET', KEYS[3], '1', 'PX', 86400000)
  if was == 0 then return 1 end
end
return 0
"""

# KEYS: open, tripped, probe. ARGV: probe lease ms. Returns 1 if an attempt may start.
_ALLOWS = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 1 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 1 end
return 0
"""


class RedisBreakers:
    """``Breakers``' interface, with the state in Redis."""

    def __init__(
        self,
        url: str | None,
        prefix: str,
        cooldown: float,
        after: int,
        counters: Counters,
        owner: str | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.prefix = prefix
        self.cooldown_ms = max(1, round(cooldown * 1000))
        self.after = after
        self.counters = counters
        self.local = Breakers(cooldown, after, counters)  # while the server is unreachable
        self.health = RedisHealth(self.url, "redis cooldowns", owner)
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *redis_errors())

    def _keys(self, key: object, *parts: str) -> list[str]:
        base = f"{self.prefix}:{'-' if key is None else key}"
        return [f"{base}:{part}" for part in parts]

    def _call(self, action: str, run: object) -> object:
        try:
            self.health.check()
            result = run()  # type: ignore[operator]
        except self.skip as exc:
            if not isinstance(exc, BackendDown):
                self.health.failed(action, exc)
            return None
        self.health.ok()
        return result

    def allows(self, key: object) -> bool:
        keys = self._keys(key, "open", "tripped", "probe")
        lease = max(self.cooldown_ms, 60_000)  # a probe whose holder vanished expires
        got = self._call(
            "check a cooldown",
            lambda: sync_client(self.url).eval(_ALLOWS, 3, *keys, lease),
        )
        return self.local.allows(key) if got is None else bool(got)

    def back_in(self, key: object) -> float:
        open_key, tripped, probe = self._keys(key, "open", "tripped", "probe")

        def read() -> float:
            client = sync_client(self.url)
            left = int(client.pttl(open_key))
            if left > 0:
                return left / 1000
            if client.exists(tripped) and client.exists(probe):  # half-open, probe running
                return max(0.001, int(client.pttl(probe)) / 1000)
            return 0.0

        got = self._call("read a cooldown", read)
        return self.local.back_in(key) if got is None else float(got)  # type: ignore[arg-type]

    def failed(self, key: object) -> None:
        keys = self._keys(key, "fails", "open", "tripped", "probe")
        got = self._call(
            "count a failure",
            lambda: sync_client(self.url).eval(_FAILED, 4, *keys, self.after, self.cooldown_ms),
        )
        if got is None:
            self.local.failed(key)
        elif got:
            self.counters.cooldowns += 1

    def succeeded(self, key: object) -> None:
        keys = self._keys(key, "fails", "open", "tripped", "probe")
        if self._call("close a cooldown", lambda: sync_client(self.url).delete(*keys)) is None:
            self.local.succeeded(key)

    def release(self, key: object) -> None:
        (probe,) = self._keys(key, "probe")
        if self._call("free a probe", lambda: sync_client(self.url).delete(probe)) is None:
            self.local.release(key)
