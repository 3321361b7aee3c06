"""``opero.Service``: what paces the calls to one external service, shared by every function
and map given the same object (its rate limits, concurrency cap, the pauses its server asks
for and its cooldown breakers), in this process or, with ``backend="redis"``, in every
process and host that builds a ``Service`` of the same name.

This module holds what users write (the service's settings, checked at construction) and
reads the ``rate_limit`` option in all its forms (:func:`pacing_of`). The parts a service
holds at run time are built by :mod:`opero.decorators.services` when a decorated function
first uses it; the judge asks them before an attempt and tells them after
(:mod:`opero.core.routes`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TypeAlias

from opero.checks import check_concurrency, check_int, check_positive_or_none, check_redis_url
from opero.limit_spec import Limit, RateLimit, limits_of
from opero.policy import Adaptive

__all__ = ["Pacing", "PerValue", "Service", "pacing_of", "value_key"]

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
        "backend",
        "concurrency",
        "cooldown",
        "cooldown_after",
        "lock",
        "name",
        "rate_limit",
        "state",
        "url",
    )

    def __init__(
        self,
        rate_limit: RateLimit | Adaptive | None = None,
        concurrency: int | None = None,
        cooldown: float | None = None,
        cooldown_after: int = 3,
        backend: str = "memory",
        name: str | None = None,
        url: str | None = None,
    ) -> None:
        _check_backend(backend, name, url)
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
        #: what the service holds at run time (limiter, pauses, breakers), built when a
        #: decorated function first uses it (``opero.decorators.services``, which alone
        #: reads it: opaque here)
        self.state: object = None
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        parts = [f"rate_limit={self.rate_limit!r}"] if self.rate_limit is not None else []
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        if self.cooldown is not None:
            parts.append(f"cooldown={self.cooldown}")
        if self.backend != "memory":
            parts.append(f"backend={self.backend!r}, name={self.name!r}")
        return f"Service({', '.join(parts)})"


def _check_backend(backend: str, name: str | None, url: str | None) -> None:
    """Where a service's state lives: a known backend, named when shared (Redis)."""
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
                out[value_key(key)] = entry
                continue
            limits = _pacing_limits(entry, where)
            if limits is None:
                raise ValueError(f"{where}: None; leave the value out to leave it unlimited")
            out[value_key(key)] = limits
        return out
    return _pacing_limits(value, name)


def value_key(value: object) -> str:
    """The key a fallback value goes by in pauses, breakers, per-value budgets and
    ``stats().successes``: its ``repr`` (``"*"`` stays the template's key)."""
    if value == "*" and isinstance(value, str):
        return "*"
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__qualname__}>"
