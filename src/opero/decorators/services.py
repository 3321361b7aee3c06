"""What a ``Service`` holds at run time, and how limiters are made from limits.

A :class:`ServiceState` is built once per ``Service`` object, when the first decorated
function that uses it is made (under the service's lock), and then shared by every function
and map given that object: its limiter (in this process, or in Redis under
``opero:service:<name>``), its concurrency cap, its pauses and its cooldown breakers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, cast

from opero.core.pauses import Pauses
from opero.core.stats import Counters
from opero.policy import Adaptive
from opero.service import Service

if TYPE_CHECKING:
    from opero.core.holds import BreakerSet
    from opero.limit_spec import Limit
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit

__all__ = ["ServiceState", "make_limiter", "slots_of", "state_of"]


class ServiceState:
    """The limiter, concurrency cap, pauses and breakers of one ``Service``."""

    __slots__ = ("_listeners", "_lock", "breakers", "counters", "limiter", "pauses", "slots")

    def __init__(self, service: Service) -> None:
        label = service.name or "service"
        space = f"opero:service:{service.name}"
        #: counts of the service's own pauses and breakers (functions count theirs too)
        self.counters = Counters()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Hashable, bool], None]] = []
        backend, url = service.backend, service.url
        self.limiter = make_limiter(service.rate_limit, backend, url, f"{space}:ratelimit", label)
        self.slots = slots_of(service.concurrency)
        shared = None
        if backend == "redis":
            from opero.backends.redis.pauses import RedisPauses

            shared = RedisPauses(url, f"{space}:pause", owner=label)
        self.pauses = Pauses(self.counters, shared=shared)
        self.breakers = self._breakers(service, f"{space}:cooldown", label)

    def _breakers(self, service: Service, key: str, label: str) -> BreakerSet | None:
        cooldown, after = service.cooldown, service.cooldown_after
        if cooldown is None:
            return None
        if service.backend == "redis":
            from opero.backends.redis.breaker import RedisBreakers

            return RedisBreakers(
                service.url, key, cooldown, after, self.counters, label, self._told
            )
        from opero.core.breaker import Breakers

        return Breakers(cooldown, after, self.counters, self._told)

    def listen(self, listener: Callable[[Hashable, bool], None]) -> None:
        """Tell ``listener(key, opened)`` when one of the service's breakers opens or closes
        (each function using the service says so in its own log and ``on_breaker``)."""
        with self._lock:
            self._listeners.append(listener)

    def _told(self, key: Hashable, opened: bool) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(key, opened)


def state_of(service: Service) -> ServiceState:
    """The run-time state of ``service``, built on first use."""
    state = service.state
    if state is None:
        with service.lock:
            if service.state is None:
                service.state = ServiceState(service)
            state = service.state
    return cast(ServiceState, state)


def make_limiter(
    limits: tuple[Limit, ...] | Adaptive | None,
    backend: str,
    url: str | None,
    key: str,
    owner: str,
) -> Limiter | None:
    """The limiter of ``limits``: in this process, or in Redis under ``key``."""
    if limits is None:
        return None
    if isinstance(limits, Adaptive):
        if backend == "redis":
            from opero.backends.redis.adaptive import RedisAdaptiveLimiter

            return cast("Limiter", RedisAdaptiveLimiter(limits, url, key, owner=owner))
        from opero.limits.adaptive import AdaptiveLimiter

        return AdaptiveLimiter(limits)
    if backend == "redis":
        from opero.backends.redis.rate_limit import RedisRateLimiter

        return cast("Limiter", RedisRateLimiter(limits, url, key, owner=owner))
    from opero.limits.rate import RateLimiter

    return RateLimiter(limits)


def slots_of(size: int | None) -> RunningLimit | None:
    """``concurrency=size`` as slots (None: no cap)."""
    if size is None:
        return None
    from opero.limits.running import RunningLimit

    return RunningLimit(size)
