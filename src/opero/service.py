"""``opero.Service``: what paces the calls to one external service, shared by every function
and map given the same object (its rate limits, concurrency cap, the pauses its server asks
for and its cooldown breakers), in this process or, with ``backend="redis"``, in every
process and host that builds a ``Service`` of the same name.

A decorated function holds a reference to its service: one for the whole function
(``rate_limit=Service(...)``), or one per fallback value (``rate_limit={value: ...}``, where
a value's entry is a ``Service`` or limits that get a service of their own). The judge asks
the service before an attempt and tells it after (:mod:`opero.core.routes`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from opero.checks import check_concurrency, check_int, check_positive_or_none, check_redis_url
from opero.core.pauses import Pauses
from opero.core.stats import Counters, success_key
from opero.policy import Adaptive
from opero.rates import Limit, limits_of

if TYPE_CHECKING:
    from opero.core.holds import BreakerSet
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit

__all__ = ["Pacing", "PerValue", "Service", "make_limiter", "pacing_of"]

#: one budget: fixed limits, a learning limit, or a service
Pacing: TypeAlias = "tuple[Limit, ...] | Adaptive | Service"
#: ``rate_limit={value: ...}``: the budget of each fallback value, by the value's key
#: (``repr`` of the value; ``"*"``: the template for values not listed)
PerValue: TypeAlias = "dict[str, Pacing]"

BACKENDS = ("memory", "redis")


class Service:
    """The rate limits, concurrency cap, pauses and cooldown breakers of one external
    service, shared by every decorated function and map given this object."""

    __slots__ = (
        "_listeners",
        "_lock",
        "backend",
        "breakers",
        "concurrency",
        "cooldown",
        "cooldown_after",
        "counters",
        "limiter",
        "name",
        "pauses",
        "rate_limit",
        "slots",
        "url",
    )

    def __init__(
        self,
        rate_limit: Any = None,
        concurrency: int | None = None,
        cooldown: float | None = None,
        cooldown_after: int = 3,
        backend: str = "memory",
        name: str | None = None,
        url: str | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"Service(backend=) must be 'memory' or 'redis', got {backend!r}")
        if backend == "redis" and not name:
            raise ValueError(
                "Service(backend='redis') needs name=: every process that builds a Service "
                "of that name shares its limits, pauses and breakers"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Service(name=) must be a str, got {name!r}")
        if url is not None and backend != "redis":
            raise ValueError(f"Service(url=) has no effect with backend={backend!r}")
        self.backend = backend
        self.name = name
        self.url = check_redis_url("Service(url)", url)
        self.rate_limit = _pacing_limits(rate_limit, "Service(rate_limit)")
        self.concurrency = check_concurrency("Service(concurrency)", concurrency)
        self.cooldown = check_positive_or_none("Service(cooldown)", cooldown)
        after = check_int("Service(cooldown_after)", cooldown_after, minimum=1)
        assert after is not None
        if cooldown is None and cooldown_after != 3:
            raise ValueError("Service(cooldown_after=) has no effect without cooldown=")
        self.cooldown_after = after
        #: counts of the service's own pauses and breakers (functions count theirs too)
        self.counters = Counters()
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Hashable, bool], None]] = []
        label = name or "service"
        space = f"opero:service:{name}"
        self.limiter = make_limiter(self.rate_limit, backend, self.url, f"{space}:ratelimit", label)
        self.slots = _slots(self.concurrency)
        shared = None
        if backend == "redis":
            from opero.backends.redis.pauses import RedisPauses

            shared = RedisPauses(self.url, f"{space}:pause", owner=label)
        self.pauses = Pauses(self.counters, shared=shared)
        self.breakers = self._breakers(f"{space}:cooldown", label)

    def _breakers(self, key: str, label: str) -> BreakerSet | None:
        cooldown = self.cooldown
        if cooldown is None:
            return None
        if self.backend == "redis":
            from opero.backends.redis.breaker import RedisBreakers

            return RedisBreakers(
                self.url, key, cooldown, self.cooldown_after, self.counters, label, self._told
            )
        from opero.core.breaker import Breakers

        return Breakers(cooldown, self.cooldown_after, self.counters, self._told)

    def listen(self, listener: Callable[[Hashable, bool], None]) -> None:
        """Tell ``listener(key, opened)`` when one of this service's breakers opens or closes
        (each function using the service says so in its own log and ``on_breaker``)."""
        with self._lock:
            self._listeners.append(listener)

    def _told(self, key: Hashable, opened: bool) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(key, opened)

    def __repr__(self) -> str:
        parts = [f"rate_limit={self.rate_limit!r}"] if self.rate_limit is not None else []
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        if self.cooldown is not None:
            parts.append(f"cooldown={self.cooldown}")
        if self.backend != "memory":
            parts.append(f"backend={self.backend!r}, name={self.name!r}")
        return f"Service({', '.join(parts)})"


def _pacing_limits(value: object, name: str) -> tuple[Limit, ...] | Adaptive | None:
    """Limits in any accepted form, or one :class:`Adaptive`."""
    if isinstance(value, Adaptive):
        return value
    if isinstance(value, Service):
        raise TypeError(f"{name}: a Service cannot hold another Service")
    if isinstance(value, list | tuple) and any(isinstance(v, Adaptive) for v in value):
        raise TypeError(
            f"{name}: an opero.Adaptive limit stands alone (it learns one rate); "
            f"got it in a list: {value!r}"
        )
    if isinstance(value, Mapping):
        raise TypeError(f"{name}: a per-value mapping cannot be nested, got {value!r}")
    return limits_of(value, name)


def pacing_of(name: str, value: object) -> tuple[Limit, ...] | Adaptive | Service | PerValue | None:
    """The ``rate_limit`` option in any accepted form: fixed limits, an :class:`Adaptive`,
    a :class:`Service`, or a mapping from fallback value to any of these."""
    if isinstance(value, Service):
        return value
    if isinstance(value, Mapping):
        if not value:
            raise ValueError(f"{name}: an empty mapping; give at least one value's limits")
        out: dict[str, Pacing] = {}
        for key, entry in value.items():
            where = f"{name}[{key!r}]"
            if isinstance(entry, Service):
                out[_key(key)] = entry
                continue
            limits = _pacing_limits(entry, where)
            if limits is None:
                raise ValueError(f"{where}: None; leave the value out to leave it unlimited")
            out[_key(key)] = limits
        return out
    return _pacing_limits(value, name)


def _key(value: object) -> str:
    """The key a fallback value goes by in pauses, breakers and per-value budgets."""
    if value == "*" and isinstance(value, str):
        return "*"
    key = success_key(value, True)
    assert key is not None
    return key


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


def _slots(size: int | None) -> RunningLimit | None:
    if size is None:
        return None
    from opero.limits.running import RunningLimit

    return RunningLimit(size)
