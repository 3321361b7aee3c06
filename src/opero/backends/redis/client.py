"""Redis connections for the shared cache and the shared rate limit.

One sync client per URL per process (redis-py pools notice a fork and reconnect), and one
``redis.asyncio`` client per URL per event loop (async connections belong to the loop that
made them). Calls use short connect/read timeouts and no client-side retries, so a server
that is down or hung costs a call at most a fraction of a second; after a failure the
backend is skipped for ``RETRY_AFTER`` seconds (no call waits on a dead server meanwhile),
then tried again, so the cache comes back by itself when the server does.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from opero.core.health import BackendDown, report_backend_failure

__all__ = [
    "DEFAULT_URL",
    "RETRY_AFTER",
    "TIMEOUT",
    "BackendDown",
    "RedisHealth",
    "async_client",
    "redact",
    "redis_errors",
    "resolve_url",
    "secrets_of",
    "sync_client",
]

DEFAULT_URL = "redis://localhost:6379/0"
TIMEOUT = 0.5  #: seconds to connect, and to wait for an answer
RETRY_AFTER = 5.0  #: seconds a failed server is left alone before it is tried again


def resolve_url(url: str | None) -> str:
    """``url``, else ``OPERO_REDIS_URL``, else the local default."""
    return url or os.environ.get("OPERO_REDIS_URL") or DEFAULT_URL


def _require_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError("the Redis backend needs redis-py: pip install 'opero[redis]'") from exc
    return redis


def redis_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the server failed", not "the data is bad"."""
    redis = _require_redis()
    return (redis.exceptions.RedisError, OSError, asyncio.TimeoutError)


_sync: dict[str, Any] = {}
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _options() -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {
        "socket_connect_timeout": TIMEOUT,
        "socket_timeout": TIMEOUT,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
    }


def sync_client(url: str) -> Any:
    """The process-wide sync client for ``url``."""
    with _lock:
        client = _sync.get(url)
        if client is None:
            redis = _require_redis()
            client = _sync[url] = redis.Redis.from_url(url, **_options())
        return client


async def async_client(url: str) -> Any:
    """The ``redis.asyncio`` client for ``url`` on the running event loop.

    It is closed with its loop: an async generator parked at its first ``yield`` is
    finalized by the loop's ``shutdown_asyncgens()`` (which ``asyncio.run`` calls before it
    closes the loop), and closes the client's connections there, so each ``asyncio.run``
    leaves no socket behind.
    """
    loop = asyncio.get_running_loop()
    with _lock:
        clients = _async.get(loop)
        if clients is None:
            clients = _async[loop] = {}
        client = clients.get(url)
        if client is not None:
            return client
        _require_redis()
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry as AsyncRetry
        from redis.backoff import NoBackoff

        options = _options()
        options["retry"] = AsyncRetry(NoBackoff(), 0)
        client = clients[url] = aioredis.Redis.from_url(url, **options)
    closer = _close_with_loop(loop, url, client)
    clients[f"closer:{url}"] = closer
    await closer.__anext__()
    return client


async def _close_with_loop(
    loop: asyncio.AbstractEventLoop, url: str, client: Any
) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with _lock:
            clients = _async.get(loop)
            if clients is not None:
                clients.pop(url, None)
                clients.pop(f"closer:{url}", None)
                if not clients:
                    _async.pop(loop, None)
        try:
            await client.aclose()
        except Exception:  # the server may be gone; the sockets are closed either way
            pass


class RedisHealth:
    """A small circuit breaker per URL: skip the server for a while after it failed."""

    _states: ClassVar[dict[str, float]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str, what: str, owner: str | None = None) -> None:
        self.url = url
        self.what = what  # "redis" for the cache, "redis rate limit" for the limiter
        self.owner = owner  # the decorated function, for warnings
        self.location = redact(url)
        self.secrets = secrets_of(url)

    def check(self) -> None:
        """Raise :class:`BackendDown` while the server is in its cool-off period."""
        until = self._states.get(self.url)
        if until is not None and time.monotonic() < until:
            raise BackendDown(self.location)

    def failed(self, action: str, exc: BaseException, *, trip: bool = True) -> None:
        """Report a failure; ``trip`` skips the server for a while (a server that answered
        with an error, such as out of memory on a write, is not skipped for reads)."""
        if trip:
            with self._lock:
                self._states[self.url] = time.monotonic() + RETRY_AFTER
        report_backend_failure(
            self.what,
            action,
            exc,
            name=self.owner,
            location=self.location,
            hide=self.secrets,
        )

    def ok(self) -> None:
        if self.url in self._states:
            with self._lock:
                self._states.pop(self.url, None)

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls._states.clear()


def secrets_of(url: str) -> tuple[str, ...]:
    """The secrets a Redis URL carries: the password of its user part and of its query."""
    from urllib.parse import parse_qs, unquote, urlsplit

    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        for name, values in parse_qs(parts.query).items():
            if name.lower() in ("password", "pass", "token"):
                found.extend(values)
    except ValueError:
        return (url,)  # unparseable: hide it whole
    found += [unquote(f) for f in found]
    return tuple(sorted({f for f in found if f}, key=len, reverse=True))


def redact(url: str) -> str:
    """``url`` with every secret replaced by ``***`` (for messages, logs and reprs)."""
    for secret in secrets_of(url):
        url = url.replace(secret, "***")
    return url
