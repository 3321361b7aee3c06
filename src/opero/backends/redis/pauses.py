"""Shared pauses  through Redis: every process and host using the Redis limiter.

A pause is a key with a time to live: ``publish`` sets it (only ever lengthening it, in one
script), and ``remaining`` reads its ``PTTL`` (server time only: no clock is compared between
hosts). Reads are cached for ``POLL`` seconds per value, so a call asks the server at most a
few times a second. A server that fails is skipped like the other Redis parts (the local
pauses still hold).
"""

from __future__ import annotations

import time

from opero.backends.redis.client import RedisHealth, redis_errors, resolve_url, sync_client
from opero.core.health import BackendDown

__all__ = ["RedisPauses"]

POLL = 0.1  #: seconds a read of a pause is reused

# KEYS[1]: the pause key; ARGV[1]: milliseconds. Lengthens, never shortens.
_PUBLISH = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


class RedisPauses:
    """Pauses of one decorated function, shared through a Redis server."""

    def __init__(self, url: str | None, prefix: str, owner: str | None = None) -> None:
        self.url = resolve_url(url)
        self.prefix = prefix
        self.health = RedisHealth(self.url, "redis pauses", owner)
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *redis_errors())
        self._read: dict[str, tuple[float, float]] = {}  # key -> (read at, seconds left)

    def _key(self, key: object) -> str:
        return f"{self.prefix}:{'-' if key is None else key}"

    def publish(self, key: object, seconds: float) -> None:
        try:
            self.health.check()
            millis = max(1, round(seconds * 1000))
            sync_client(self.url).eval(_PUBLISH, 1, self._key(key), millis)
        except self.skip as exc:
            if not isinstance(exc, BackendDown):
                self.health.failed("publish a pause", exc)
            return
        self.health.ok()
        self._read.pop(self._key(key), None)

    def remaining(self, key: object) -> float:
        name = self._key(key)
        now = time.monotonic()
        cached = self._read.get(name)
        if cached is not None and now - cached[0] < POLL:
            return max(0.0, cached[1] - (now - cached[0]))
        try:
            self.health.check()
            left = int(sync_client(self.url).pttl(name))
        except self.skip as exc:
            if not isinstance(exc, BackendDown):
                self.health.failed("read a pause", exc)
            return 0.0
        self.health.ok()
        seconds = left / 1000 if left > 0 else 0.0
        self._read[name] = (now, seconds)
        return seconds
