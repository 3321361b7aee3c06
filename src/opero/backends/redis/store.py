"""The Redis cache backend, shared by processes and machines.

Values are serialized (:mod:`opero.cache.serialize`) and stored with ``SET .. PX ttl``. Every
key starts with ``namespace:module.qualname:`` so :meth:`RedisStore.clear` removes exactly one
function's entries in one namespace. Concurrent misses across processes compute once, through
the leases of :mod:`opero.backends.redis.lease`. A server that fails raises
:class:`~opero.core.health.BackendDown` after being reported, and the caller runs uncached;
a server that answers a write with an error (out of memory) is reported but still read.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from opero.backends.redis.client import (
    RedisHealth,
    async_client,
    redis_errors,
    resolve_url,
    sync_client,
)
from opero.backends.redis.lease import Leases
from opero.cache.serialize import dumps, loads
from opero.cache.store import MISS
from opero.core.health import BackendDown

__all__ = ["RedisStore"]


def _escape_glob(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore:
    """Entries of one function in one namespace on a Redis server."""

    backend = "redis"
    shared = True  # other processes see these entries: single-flight across processes

    def __init__(
        self,
        url: str | None,
        ttl: float | None,
        prefix: str,
        serializer: str,
        owner: str | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.ttl_ms = None if ttl is None else max(1, int(ttl * 1000))
        self.prefix = prefix
        self.serializer = serializer
        self.health = RedisHealth(self.url, "redis", owner)
        self.location = self.health.location  # the URL without secrets
        self.secrets = self.health.secrets
        self.errors = redis_errors()
        import redis

        self.answered: type[BaseException] = redis.exceptions.ResponseError
        self.skip: tuple[type[BaseException], ...] = (BackendDown, *self.errors)
        self.leases = Leases(self.url, serializer, self._client, self._aclient, self.skip)
        self.lease, self.release, self.wait = (
            self.leases.lease,
            self.leases.release,
            self.leases.wait,
        )
        self.alease, self.arelease, self.await_value = (
            self.leases.alease,
            self.leases.arelease,
            self.leases.await_value,
        )

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r}, prefix={self.prefix!r})"

    def _failed(self, action: str, exc: BaseException) -> BackendDown:
        self.health.failed(action, exc, trip=not isinstance(exc, self.answered))
        return BackendDown(self.location)

    # ----- sync --------------------------------------------------------------------------
    def _client(self) -> Any:
        self.health.check()
        return sync_client(self.url)

    def get(self, key: Hashable) -> Any:
        try:
            data = self._client().get(key)
        except self.errors as exc:
            raise self._failed("read", exc) from None
        self.health.ok()
        return MISS if data is None else loads(data, self.serializer)

    def set(self, key: Hashable, value: object) -> None:
        data = dumps(value, self.serializer)
        try:
            self._client().set(key, data, px=self.ttl_ms)
        except self.errors as exc:
            raise self._failed("write", exc) from None

    def contains(self, key: Hashable) -> bool:
        try:
            found = self._client().exists(key)
        except self.errors as exc:
            raise self._failed("read", exc) from None
        self.health.ok()
        return bool(found)

    def delete(self, key: Hashable) -> bool:
        try:
            removed = self._client().delete(key)
        except self.errors as exc:
            raise self._failed("delete", exc) from None
        self.health.ok()
        return bool(removed)

    def clear(self) -> None:
        client = self._client()
        try:
            batch: list[object] = []  # keys as the server names them
            for key in client.scan_iter(match=_escape_glob(self.prefix) + ":*", count=500):
                batch.append(key)
                if len(batch) >= 500:
                    client.unlink(*batch)
                    batch = []
            if batch:
                client.unlink(*batch)
        except self.errors as exc:
            raise self._failed("clear", exc) from None

    # ----- async -------------------------------------------------------------------------
    async def _aclient(self) -> Any:
        self.health.check()
        return await async_client(self.url)

    async def aget(self, key: Hashable) -> Any:
        try:
            data = await (await self._aclient()).get(key)
        except self.errors as exc:
            raise self._failed("read", exc) from None
        self.health.ok()
        return MISS if data is None else loads(data, self.serializer)

    async def aset(self, key: Hashable, value: object) -> None:
        data = dumps(value, self.serializer)
        try:
            await (await self._aclient()).set(key, data, px=self.ttl_ms)
        except self.errors as exc:
            raise self._failed("write", exc) from None
