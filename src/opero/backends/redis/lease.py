"""Leases on Redis keys: one process computes a missed key, the others wait for its value.

The first process to miss a key takes a short lease (``SET key:lease token NX PX``) and
computes; the lease is renewed every ``RENEW_SECONDS`` by one renewer thread per process
while the computation runs, so a computation longer than any lease is never started twice
while its process runs Python and reaches Redis; a holder that dies stops renewing and the
key is free again within ``LEASE_SECONDS``. Waiters poll for the value until it appears or
the lease is gone. A value that cannot be decoded is a miss.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from opero.cache.serialize import loads
from opero.cache.store import MISS

__all__ = ["LEASE_SECONDS", "POLL", "RENEW_SECONDS", "Leases", "Renewer"]

LEASE_SECONDS = 5.0  #: a lease not renewed is gone after this long
RENEW_SECONDS = 1.5  #: how often a computing process renews its leases
POLL = (0.02, 0.25)  #: first and longest pause between polls of a waiting process

_RELEASE = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
)


class Renewer:
    """One daemon thread per process renewing the leases in use; it exits when none are."""

    def __init__(self) -> None:
        self._leases: dict[tuple[str, str], tuple[Callable[[], Any], str]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, url: str, lease_key: str, token: str, client: Callable[[], Any]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread is not here
                self._leases.clear()
                self._thread = None
                self._pid = os.getpid()
            self._leases[(url, lease_key)] = (client, token)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="opero-redis-lease", daemon=True
                )
                self._thread.start()

    def remove(self, url: str, lease_key: str) -> None:
        with self._lock:
            self._leases.pop((url, lease_key), None)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_SECONDS)
            with self._lock:
                leases = list(self._leases.items())
                if not leases:
                    self._thread = None
                    return
            for (_url, lease_key), (client, token) in leases:
                try:
                    client().eval(_RENEW, 1, lease_key, token, int(LEASE_SECONDS * 1000))
                except Exception:  # the server is away: the lease may lapse, never fail here
                    pass


RENEWER = Renewer()


class Leases:
    """Leases of one store, sync and async."""

    def __init__(
        self,
        url: str,
        serializer: str,
        sync_client: Callable[[], Any],
        async_client: Callable[[], Any],
        skip: tuple[type[BaseException], ...],
    ) -> None:
        self.url = url
        self.serializer = serializer
        self._client = sync_client
        self._aclient = async_client
        self.skip = skip

    def _decoded(self, data: Any) -> Any:
        try:
            return loads(data, self.serializer)
        except Exception:  # cannot be decoded: a miss
            return MISS

    # ----- sync ----------------------------------------------------------------------------
    def lease(self, key: Hashable) -> str | None:
        """A token if this process may compute ``key``; None if another holds the lease."""
        token = f"{os.getpid()}:{time.monotonic_ns()}"
        lease_key = f"{key}:lease"
        try:
            taken = self._client().set(lease_key, token, nx=True, px=int(LEASE_SECONDS * 1000))
        except self.skip:
            return ""  # no server: compute without a lease
        if not taken:
            return None
        RENEWER.add(self.url, lease_key, token, self._client)
        return token

    def release(self, key: Hashable, token: str) -> None:
        if not token:
            return
        lease_key = f"{key}:lease"
        RENEWER.remove(self.url, lease_key)
        try:
            self._client().eval(_RELEASE, 1, lease_key, token)
        except self.skip:
            pass

    def wait(self, key: Hashable) -> Any:
        """Poll until another process stored ``key`` (its value) or gave up (MISS)."""
        pause, longest = POLL
        while True:
            try:
                client = self._client()
                data, leased = client.get(key), client.exists(f"{key}:lease")
            except self.skip:
                return MISS
            if data is not None:
                return self._decoded(data)
            if not leased:
                return MISS
            time.sleep(pause)
            pause = min(longest, pause * 2)

    # ----- async ---------------------------------------------------------------------------
    async def alease(self, key: Hashable) -> str | None:
        token = f"{os.getpid()}:{time.monotonic_ns()}"
        lease_key = f"{key}:lease"
        try:
            client = await self._aclient()
            taken = await client.set(lease_key, token, nx=True, px=int(LEASE_SECONDS * 1000))
        except self.skip:
            return ""
        if not taken:
            return None
        RENEWER.add(self.url, lease_key, token, self._client)
        return token

    async def arelease(self, key: Hashable, token: str) -> None:
        if not token:
            return
        lease_key = f"{key}:lease"
        RENEWER.remove(self.url, lease_key)
        try:
            await (await self._aclient()).eval(_RELEASE, 1, lease_key, token)
        except self.skip:
            pass

    async def await_value(self, key: Hashable) -> Any:
        pause, longest = POLL
        while True:
            try:
                client = await self._aclient()
                data = await client.get(key)
                leased = await client.exists(f"{key}:lease")
            except self.skip:
                return MISS
            if data is not None:
                return self._decoded(data)
            if not leased:
                return MISS
            await asyncio.sleep(pause)
            pause = min(longest, pause * 2)
