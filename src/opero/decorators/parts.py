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
from opero.decorators.services import ServiceState, make_limiter, slots_of, state_of
from opero.policy import Adaptive, RetryBudget
from opero.service import Pacing, PerValue, Service

if TYPE_CHECKING:
    from opero.cache.store import Store
    from opero.core.budget import Budget
    from opero.core.holds import BreakerSet
    from opero.core.pauses import Pauses, SharedPauses
    from opero.core.routes import Route
    from opero.limit_spec import Limit
    from opero.limits.base import Limiter
    from opero.options import OperoOptions

__all__ = ["build", "name_of"]

#: told when a cooldown breaker opens (True) or closes (False), with the value's key
Told = Callable[[Hashable, bool], None]


def name_of(fn: Callable[..., Any]) -> str:
    """The name a decorated function goes by in keys, logs and errors."""
    return getattr(fn, "__qualname__", None) or repr(fn)


def build(
    fn: Callable[..., Any], options: OperoOptions, runs: Callable[..., Any] | None = None
) -> tuple[Judge, CacheLayer | None]:
    """The judge and (with ``cache=True``) the cache layer of ``fn``; its attempts run
    ``runs`` if given (a stream map's attempts collect the stream ``fn`` makes)."""
    name = name_of(fn)
    judge = Judge(fn if runs is None else runs, options, name, _services(fn, options, name))
    if not options["cache"]:
        return judge, None
    identity = identify(fn)
    prefix = key_prefix(options["cache_namespace"], identity)
    if options["cache_backend"] == "redis":
        from opero.backends.redis.store import RedisStore

        store: Store = RedisStore(
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


class _Wiring:
    """Builds the :class:`Services` of one function: where its shared state lives (this
    process, or Redis at ``url`` under keys ``<namespace>:<kind>:<module>.<name>``), its
    counters, and what a breaker tells when it opens or closes."""

    __slots__ = ("counters", "name", "options", "qualified", "redis", "told", "url")

    def __init__(self, fn: Callable[..., Any], options: OperoOptions, name: str) -> None:
        self.options = options
        self.name = name
        self.redis = options["rate_limit_backend"] == "redis"
        self.url = options["cache_url"]
        self.qualified = f"{fn.__module__}.{name}"
        self.counters = Counters()
        self.told = _breaker_told(name, options)

    def key(self, kind: str) -> str:
        return f"{self.options['cache_namespace']}:{kind}:{self.qualified}"

    def services(self) -> Services:
        pacing = self.options["rate_limit"]
        service = state_of(pacing) if isinstance(pacing, Service) else None
        route = _route(pacing, self) if isinstance(pacing, dict) else None
        limiter = self.limiter(pacing, service) if route is None else None
        breakers = self.breakers()
        shared: SharedPauses | None = None
        if self.redis and service is None and (limiter is not None or route is not None):
            shared, breakers = self.in_redis(breakers)
        pausing, breakers = self.held(pacing, service, route, shared, breakers)
        return Services(
            self.counters,
            limiter,
            slots_of(self.options["concurrency"]),
            breakers,
            shared,
            _budget(self.options),
            pausing=pausing,
            route=route,
            service_slots=service.slots if service is not None else None,
        )

    def limiter(self, pacing: object, service: ServiceState | None) -> Limiter | None:
        """The function's own limiter: its service's, or one built from ``rate_limit``."""
        if service is not None:
            return service.limiter
        fixed = cast("tuple[Limit, ...] | Adaptive | None", pacing)
        backend = "redis" if self.redis else "memory"
        return make_limiter(fixed, backend, self.url, self.key("ratelimit"), self.name)

    def breakers(self) -> BreakerSet | None:
        """The function's cooldown breakers in this process (None without ``cooldown``)."""
        cooldown = self.options["cooldown"]
        if not cooldown:
            return None
        from opero.core.breaker import Breakers

        return Breakers(cooldown, self.options["cooldown_after"], self.counters, self.told)

    def in_redis(self, breakers: BreakerSet | None) -> tuple[SharedPauses, BreakerSet | None]:
        """Pauses (and, with ``cooldown``, breakers) every process of the function shares."""
        from opero.backends.redis.pauses import RedisPauses

        shared = RedisPauses(self.url, self.key("pause"), owner=self.name)
        cooldown = self.options["cooldown"]
        if cooldown is not None:
            from opero.backends.redis.breaker import RedisBreakers

            after = self.options["cooldown_after"]
            breakers = RedisBreakers(
                self.url, self.key("cooldown"), cooldown, after, self.counters, self.name, self.told
            )
        return shared, breakers

    def held(
        self,
        pacing: object,
        service: ServiceState | None,
        route: Route | None,
        shared: SharedPauses | None,
        breakers: BreakerSet | None,
    ) -> tuple[Pauses | None, BreakerSet | None]:
        """The pauses the function uses if not its own (a service's, or kept per fallback
        value), and its breakers (a service's, or per value); services named by
        ``rate_limit`` tell of their breakers as the function's do."""
        services = [state_of(each) for each in _named(pacing)]
        for each in services:
            each.listen(self.told)
        if service is not None:
            return service.pauses, service.breakers if service.breakers is not None else breakers
        if route is None:
            return None, breakers
        from opero.core.routes import RoutedBreakers, RoutedPauses

        pausing = RoutedPauses(self.counters, self.options["max_delay"], route, shared=shared)
        if breakers is not None or any(s.breakers is not None for s in services):
            breakers = RoutedBreakers(breakers, route)
        return pausing, breakers


def _services(fn: Callable[..., Any], options: OperoOptions, name: str) -> Services:
    """The limiter, concurrency limit, breakers and shared pauses of ``fn``: in this
    process, or in Redis with ``rate_limit_backend="redis"``; a ``Service``'s, or one
    budget per fallback value, when ``rate_limit`` names them."""
    return _Wiring(fn, options, name).services()


def _budget(options: OperoOptions) -> Budget | None:
    if options["retry_budget"] is None:
        return None
    from opero.core.budget import Budget

    return Budget(cast(RetryBudget, options["retry_budget"]))


def _named(pacing: object) -> list[Service]:
    """The services ``rate_limit`` names (itself, or entries of a per-value mapping)."""
    found = pacing.values() if isinstance(pacing, dict) else [pacing]
    return [p for p in found if isinstance(p, Service)]


def _route(pacing: PerValue, where: _Wiring) -> Route:
    """Each fallback value's budget: its entry, else one built from the ``"*"`` entry."""
    from opero.core.routes import Gate, Route

    backend = "redis" if where.redis else "memory"
    url, key, name = where.url, where.key("ratelimit"), where.name

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


def _breaker_told(name: str, options: OperoOptions) -> Told:
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
