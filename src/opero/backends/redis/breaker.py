"""Cooldowns through Redis: one circuit breaker per value for every process and
host using the Redis limiter.

Per value, five keys: ``fails`` (consecutive failed attempts), ``open`` (set for ``cooldown``
seconds when the breaker opens), ``tripped`` (opened and not yet closed: once ``open`` has
expired the value is half-open), ``probe`` (the one half-open attempt, a lease holding its
id) and ``gen`` (how many times it opened). Every change is one script, so two processes never
both take the probe. Tickets work as in :mod:`opero.core.breaker`: only the probe's ticket
closes an open breaker, whichever process holds it. If the server fails, the breakers of this
process decide alone until it answers again.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable

from opero.backends.redis.client import RedisHealth, redis_errors, resolve_url, sync_client
from opero.core.breaker import Breakers, Ticket
from opero.core.health import BackendDown
from opero.core.stats import Counters

__all__ = ["RedisBreakers"]


# KEYS: fails, open, tripped, probe, gen. ARGV: cooldown_after, cooldown ms, then the ticket:
# its generation and probe id ('' and '': none, the older call). Returns 1 if it opened.
_FAILED = """
local fails = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], 86400000)
local function open()
  local was = redis.call('EXISTS', KEYS[2])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
  redis.call('SET', KEYS[3], '1', 'PX', 86400000)
  if was == 1 then return 0 end
  redis.call('INCR', KEYS[5])
  redis.call('PEXPIRE', KEYS[5], 86400000)
  return 1
end
if ARGV[3] == '' then
  local probed = redis.call('DEL', KEYS[4])
  if probed == 1 or fails >= tonumber(ARGV[1]) then return open() end
  return 0
end
if ARGV[4] ~= '0' then
  if redis.call('GET', KEYS[4]) == ARGV[4] then
    redis.call('DEL', KEYS[4])
    return open()
  end
  return 0
end
if redis.call('EXISTS', KEYS[3]) == 0 and fails >= tonumber(ARGV[1]) then return open() end
return 0
"""

# KEYS: fails, open, tripped, probe, gen. ARGV: the ticket's generation and probe id ('' and
# '': none). Returns 1 if it closed the breaker.
_SUCCEEDED = """
local function close()
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return 1
end
if ARGV[1] == '' then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('DEL', KEYS[1])
    return 0
  end
  if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[4]) == 1 then
    return close()
  end
  return 0
end
if ARGV[2] ~= '0' and redis.call('GET', KEYS[4]) == ARGV[2] then return close() end
if redis.call('EXISTS', KEYS[3]) == 0 and (redis.call('GET', KEYS[5]) or '0') == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: open, tripped, probe, gen. ARGV: probe lease ms, a fresh probe id. Returns
# {1, generation, probe id or '0'} if an attempt may start, else {0}.
_ALLOWS = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
local gen = redis.call('GET', KEYS[4]) or '0'
if redis.call('EXISTS', KEYS[2]) == 0 then return {1, gen, '0'} end
if redis.call('SET', KEYS[3], ARGV[2], 'NX', 'PX', ARGV[1]) then return {1, gen, ARGV[2]} end
return {0}
"""

# KEYS: probe. ARGV: the probe id ('': whichever). Frees the probe if it is that one.
_RELEASE = """
if ARGV[1] == '' or redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _ticket_args(ticket: Ticket | None) -> list[str]:
    if ticket is None or not ticket.shared:
        return ["", ""]
    return [str(ticket.generation), str(ticket.probe)]


def _local(ticket: Ticket | None) -> Ticket | None:
    """The ticket as this process's own breakers take it (theirs, or none)."""
    return None if ticket is None or ticket.shared else ticket


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
        listener: Callable[[Hashable, bool], None] | None = None,
    ) -> None:
        self.listener = listener
        self.url = resolve_url(url)
        self.prefix = prefix
        self.cooldown_ms = max(1, round(cooldown * 1000))
        self.after = after
        self.counters = counters
        # while the server is unreachable
        self.local = Breakers(cooldown, after, counters, listener)
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

    def admit(self, key: object) -> Ticket | None:
        keys = self._keys(key, "open", "tripped", "probe", "gen")
        lease = max(self.cooldown_ms, 60_000)  # a probe whose holder vanished expires
        probe_id = random.getrandbits(62) + 1
        got = self._call(
            "check a cooldown",
            lambda: sync_client(self.url).eval(_ALLOWS, 4, *keys, lease, probe_id),
        )
        if got is None:
            return self.local.admit(key)
        if not int(got[0]):  # type: ignore[index]
            return None
        generation, probe = (int(x) for x in got[1:])  # type: ignore[index]
        return Ticket(generation, probe, shared=True)

    def allows(self, key: object) -> bool:
        return self.admit(key) is not None

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

    def failed(self, key: object, ticket: Ticket | None = None) -> None:
        keys = self._keys(key, "fails", "open", "tripped", "probe", "gen")
        args = [self.after, self.cooldown_ms, *_ticket_args(ticket)]
        got = self._call(
            "count a failure",
            lambda: sync_client(self.url).eval(_FAILED, 5, *keys, *args),
        )
        if got is None:
            self.local.failed(key, _local(ticket))
        elif got:
            self.counters.cooldowns += 1
            if self.listener is not None:
                self.listener(key, True)

    def succeeded(self, key: object, ticket: Ticket | None = None) -> None:
        keys = self._keys(key, "fails", "open", "tripped", "probe", "gen")
        args = _ticket_args(ticket)
        got = self._call(
            "close a cooldown",
            lambda: sync_client(self.url).eval(_SUCCEEDED, 5, *keys, *args),
        )
        if got is None:
            self.local.succeeded(key, _local(ticket))
        elif got and self.listener is not None:
            self.listener(key, False)

    def release(self, key: object, ticket: Ticket | None = None) -> None:
        if ticket is not None and not ticket.shared:
            self.local.release(key, ticket)  # admitted while the server was away
            return
        if ticket is not None and not ticket.probe:
            return  # not the probe: nothing to free
        (probe,) = self._keys(key, "probe")
        probe_id = _ticket_args(ticket)[1]
        got = self._call(
            "free a probe",
            lambda: sync_client(self.url).eval(_RELEASE, 1, probe, probe_id),
        )
        if got is None:
            self.local.release(key, _local(ticket))
