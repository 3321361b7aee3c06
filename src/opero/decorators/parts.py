"""Options -> parts: the one place that turns validated options into the judge and the
cache layer of a decorated function, choosing the stores and limiters (the Redis ones from
:mod:`opero.backends.redis`, loaded only when asked for)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, cast

from opero.cache.identity import identify
from opero.cache.keys import key_prefix
from opero.cache.layer import CacheLayer, local_store
from opero.core.call import Services
from opero.core.judge import Judge
from opero.core.stats import Counters
from opero.decorators.services import make_limiter, slots_of, state_of
from opero.policy import Adaptive, RetryBudget
from opero.service import Pacing, PerValue, Service

if TYPE_CHECKING:
    from opero.core.holds import BreakerSet
    from opero.core.pauses import Pauses, SharedPauses
    from opero.core.routes import Route
    from opero.limits.running import RunningLimit
    from opero.options import OperoOptions
    from opero.rates import Limit

__all__ = ["build", "name_of"]


def name_of(fn: Callable[..., Any]) -> str:
    """The name a decorated function goes by in keys, logs and errors."""
    return getattr(fn, "__qualname__", None) or repr(fn)


def build(fn: Callable[..., Any], options: OperoOptions) -> tuple[Judge, CacheLayer | None]:
    """The judge and (with ``cache=True``) the cache layer of ``fn``."""
    name = name_of(fn)
    judge = Judge(fn, options, name, _services(fn, options, name))
    if not options["cache"]:
        return judge, None
    identity = identify(fn)
    prefix = key_prefix(options["cache_namespace"], identity)
    if options["cache_backend"] == "redis":
        from opero.backends.redis.store import RedisStore

        store: Any = RedisStore(
            options["cache_url"],
            options["cache_ttl"],
            prefix,
            options["cache_serializer"],
            owner=name,
        )
    else:
        store = local_store(options, prefix)
    if options["cache_backend"] == "memory":
        return judge, CacheLayer(fn, options, name, store, prefix)
    return judge, CacheLayer(fn, options, name, store, prefix, identity)


def _services(fn: Callable[..., Any], options: OperoOptions, name: str) -> Services:
    """The limiter, concurrency limit, breakers and shared pauses of ``fn``: in this
    process, or in Redis with ``rate_limit_backend="redis"``; a ``Service``'s, or one
    budget per fallback value, when ``rate_limit`` names them."""
    counters = Counters()
    pacing = options["rate_limit"]
    redis = options["rate_limit_backend"] == "redis"
    url, space = options["cache_url"], options["cache_namespace"]
    key = f"{space}:ratelimit:{fn.__module__}.{name}"
    told = _breaker_told(name, options)
    service = state_of(pacing) if isinstance(pacing, Service) else None
    route = None
    limiter = None
    if isinstance(pacing, dict):
        route = _route(pacing, redis, url, key, name)
    elif service is not None:
        limiter = service.limiter
    else:
        fixed = cast("tuple[Limit, ...] | Adaptive | None", pacing)
        limiter = make_limiter(fixed, "redis" if redis else "memory", url, key, name)
    cooldown, after = options["cooldown"], options["cooldown_after"]
    breakers: BreakerSet | None = None
    if cooldown:
        from opero.core.breaker import Breakers

        breakers = Breakers(cooldown, after, counters, told)
    shared: SharedPauses | None = None
    if redis and service is None and (limiter is not None or route is not None):
        from opero.backends.redis.pauses import RedisPauses

        shared = RedisPauses(url, f"{space}:pause:{fn.__module__}.{name}", owner=name)
        if cooldown is not None:
            from opero.backends.redis.breaker import RedisBreakers

            key = f"{space}:cooldown:{fn.__module__}.{name}"
            breakers = RedisBreakers(url, key, cooldown, after, counters, name, told)
    services = [state_of(each) for each in _named(pacing)]
    for each in services:
        each.listen(told)
    pausing: Pauses | None = None
    if service is not None:
        pausing = service.pauses
        breakers = service.breakers if service.breakers is not None else breakers
    elif route is not None:
        from opero.core.routes import RoutedBreakers, RoutedPauses

        pausing = RoutedPauses(counters, options["max_delay"], route, shared=shared)
        if breakers is not None or any(s.breakers is not None for s in services):
            breakers = RoutedBreakers(breakers, route)
    budget = None
    if options["retry_budget"] is not None:
        from opero.core.budget import Budget

        budget = Budget(cast(RetryBudget, options["retry_budget"]))
    return Services(
        counters,
        limiter,
        _slots(options),
        breakers,
        shared,
        budget,
        pausing=pausing,
        route=route,
        service_slots=service.slots if service is not None else None,
    )


def _named(pacing: object) -> list[Service]:
    """The services ``rate_limit`` names (itself, or entries of a per-value mapping)."""
    found = pacing.values() if isinstance(pacing, dict) else [pacing]
    return [p for p in found if isinstance(p, Service)]


def _route(pacing: PerValue, redis: bool, url: str | None, key: str, name: str) -> Route:
    """Each fallback value's budget: its entry, else one built from the ``"*"`` entry."""
    from opero.core.routes import Gate, Route

    backend = "redis" if redis else "memory"

    def gate(value_key: str, entry: Pacing) -> Gate:
        if isinstance(entry, Service):
            state = state_of(entry)
            return Gate(state.limiter, state.slots, state)
        return Gate(make_limiter(entry, backend, url, f"{key}:{value_key}", name))

    template = pacing.get("*")
    gates = {k: gate(k, entry) for k, entry in pacing.items() if k != "*"}

    def make(value_key: str) -> Gate | None:
        return None if template is None else gate(value_key, template)

    return Route(gates, make)


def _slots(options: OperoOptions) -> RunningLimit | None:
    return slots_of(options["concurrency"])


def _breaker_told(name: str, options: OperoOptions) -> Callable[[Hashable, bool], None]:
    """What happens when a cooldown breaker opens or closes: an INFO record, and
    ``on_breaker`` if given."""
    from loguru import logger

    from opero.core.hooks import BreakerDetails, fire

    hook = options["on_breaker"]

    def told(key: Hashable, opened: bool) -> None:
        what = "the function" if key is None else f"value {key}"
        logger.info("{}: cooldown of {} {}", name, what, "opened" if opened else "closed")
        if hook is not None:
            fire(hook, BreakerDetails(name, None if key is None else str(key), opened))

    return told
