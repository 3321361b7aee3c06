"""The Redis cache backend, shared by processes and machines.

Values are serialized (:mod:`opero.cache.serialize`) and stored with ``SET .. PX ttl``. Every
key starts with ``namespace:module.qualname:`` so :meth:`RedisStore.clear` removes exactly one
function's entries in one namespace. Concurrent misses across processes compute once: the
first takes a short lease (``SET lease-key token NX PX``), the others poll for the value
until it appears or the lease is gone (its holder finished without storing, or died: the
lease expires by itself). Any server failure raises :class:`~opero.core.health.
BackendDown` after being reported, and the caller runs uncached.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Hashable
from typing import Any

from opero.backends.redis.client import (
    RedisHealth,
    async_client,
    redis_errors,
    resolve_url,
    sync_client,
)
from opero.cache.serialize import dumps, loads
from opero.cache.store import MISS
from opero.core.health import BackendDown

__all__ = ["LEASE_SECONDS", "RedisStore"]

LEASE_SECONDS = 30.0  #: a computing process holds its lease this long at most
POLL = (0.02, 0.25)  #: first and longest pause between polls of a waiting process
_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore:
    """Entries of one function in one namespace on a Redis server."""

    backend = "redis"
    shared = True  # other processes see these entries: single-flight across processes

    def __init__(self, url: str | None, ttl: float | None, prefix: str, serializer: str) -> None:
        self.url = resolve_url(url)
        self.ttl_ms = None if ttl is None else max(1, int(ttl * 1000))
        self.prefix = prefix
        self.serializer = serializer
        self.health = RedisHealth(self.url, "redis")
        self.errors = redis_errors()
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *self.errors)

    # ----- sync --------------------------------------------------------------------------
    def _client(self) -> Any:
        self.health.check()
        return sync_client(self.url)

    def get(self, key: Hashable) -> Any:
        try:
            data = self._client().get(key)
        except self.errors as exc:
            self.health.failed("read", exc)
            raise BackendDown(self.url) from exc
        self.health.ok()
        return MISS if data is None else loads(data, self.serializer)

    def set(self, key: Hashable, value: Any) -> None:
        data = dumps(value, self.serializer)
        try:
            self._client().set(key, data, px=self.ttl_ms)
        except self.errors as exc:
            self.health.failed("write", exc)
            raise BackendDown(self.url) from exc

    def clear(self) -> None:
        client = self._client()
        try:
            batch: list[Any] = []
            for key in client.scan_iter(match=_escape_glob(self.prefix) + ":*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        except self.errors as exc:
            self.health.failed("clear", exc)
            raise BackendDown(self.url) from exc

    def lease(self, key: Hashable) -> str | None:
        """A token if this process may compute ``key``; None if another holds the lease."""
        token = f"{os.getpid()}:{time.monotonic_ns()}"
        try:
            taken = self._client().set(f"{key}:lease", token, nx=True, px=int(LEASE_SECONDS * 1000))
        except self.skip:
            return ""  # no server: compute without a lease
        return token if taken else None

    def release(self, key: Hashable, token: str) -> None:
        if not token:
            return
        try:
            self._client().eval(_RELEASE, 1, f"{key}:lease", token)
        except self.skip:
            pass

    def wait(self, key: Hashable) -> Any:
        """Poll until another process stored ``key`` (its value) or gave up (MISS)."""
        pause, longest = POLL
        deadline = time.monotonic() + LEASE_SECONDS
        while time.monotonic() < deadline:
            try:
                client = self._client()
                data, leased = client.get(key), client.exists(f"{key}:lease")
            except self.skip:
                return MISS
            if data is not None:
                return loads(data, self.serializer)
            if not leased:
                return MISS
            time.sleep(pause)
            pause = min(longest, pause * 2)
        return MISS

    # ----- async -------------------------------------------------------------------------
    def _aclient(self) -> Any:
        self.health.check()
        return async_client(self.url)

    async def aget(self, key: Hashable) -> Any:
        try:
            data = await self._aclient().get(key)
        except self.errors as exc:
            self.health.failed("read", exc)
            raise BackendDown(self.url) from exc
        self.health.ok()
        return MISS if data is None else loads(data, self.serializer)

    async def aset(self, key: Hashable, value: Any) -> None:
        data = dumps(value, self.serializer)
        try:
            await self._aclient().set(key, data, px=self.ttl_ms)
        except self.errors as exc:
            self.health.failed("write", exc)
            raise BackendDown(self.url) from exc

    async def alease(self, key: Hashable) -> str | None:
        token = f"{os.getpid()}:{time.monotonic_ns()}"
        try:
            taken = await self._aclient().set(
                f"{key}:lease", token, nx=True, px=int(LEASE_SECONDS * 1000)
            )
        except self.skip:
            return ""
        return token if taken else None

    async def arelease(self, key: Hashable, token: str) -> None:
        if not token:
            return
        try:
            await self._aclient().eval(_RELEASE, 1, f"{key}:lease", token)
        except self.skip:
            pass

    async def await_value(self, key: Hashable) -> Any:
        pause, longest = POLL
        deadline = time.monotonic() + LEASE_SECONDS
        while time.monotonic() < deadline:
            try:
                client = self._aclient()
                data = await client.get(key)
                leased = await client.exists(f"{key}:lease")
            except self.skip:
                return MISS
            if data is not None:
                return loads(data, self.serializer)
            if not leased:
                return MISS
            await asyncio.sleep(pause)
            pause = min(longest, pause * 2)
        return MISS
