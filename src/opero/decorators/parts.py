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
from opero.policy import RetryBudget
from opero.rates import limits_of

if TYPE_CHECKING:
    from opero.core.holds import BreakerSet
    from opero.core.pauses import SharedPauses
    from opero.limits.base import Limiter
    from opero.limits.running import RunningLimit
    from opero.options import OperoOptions

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
    process, or in Redis with ``rate_limit_backend="redis"``."""
    counters = Counters()
    limiter = _limiter(fn, options, name)
    cooldown, after = options["cooldown"], options["cooldown_after"]
    breakers: BreakerSet | None = None
    if cooldown:
        from opero.core.breaker import Breakers

        breakers = Breakers(cooldown, after, counters, _breaker_told(name, options))
    shared: SharedPauses | None = None
    if limiter is not None and options["rate_limit_backend"] == "redis":
        from opero.backends.redis.pauses import RedisPauses

        url, space = options["cache_url"], options["cache_namespace"]
        shared = RedisPauses(url, f"{space}:pause:{fn.__module__}.{name}", owner=name)
        if cooldown is not None:
            from opero.backends.redis.breaker import RedisBreakers

            key = f"{space}:cooldown:{fn.__module__}.{name}"
            told = _breaker_told(name, options)
            breakers = RedisBreakers(url, key, cooldown, after, counters, name, told)
    budget = None
    if options["retry_budget"] is not None:
        from opero.core.budget import Budget

        budget = Budget(cast(RetryBudget, options["retry_budget"]))
    return Services(counters, limiter, _slots(options), breakers, shared, budget)


def _limiter(fn: Callable[..., Any], options: OperoOptions, name: str) -> Limiter | None:
    limits = limits_of(options["rate_limit"])
    if not limits:
        return None
    if options["rate_limit_backend"] == "redis":
        from opero.backends.redis.rate_limit import RedisRateLimiter

        key = f"{options['cache_namespace']}:ratelimit:{fn.__module__}.{name}"
        return RedisRateLimiter(limits, options["cache_url"], key, owner=name)
    from opero.limits.rate import RateLimiter

    return RateLimiter(limits)


def _slots(options: OperoOptions) -> RunningLimit | None:
    size = options["concurrency"]
    if size is None:
        return None
    from opero.limits.running import RunningLimit

    return RunningLimit(size)


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
