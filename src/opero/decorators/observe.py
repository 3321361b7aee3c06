"""``cache_clear()``, ``cache_info()``, ``stats()``, ``cache_delete()`` and
``cache_contains()`` on every decorated function."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opero.cache.memory import MemoryStore
from opero.policy import Adaptive
from opero.service import Service

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.core.judge import Judge
    from opero.core.stats import CacheInfo, Stats

__all__ = ["attach", "learned_rate"]


def attach(wrapper: Any, judge: Judge, layer: CacheLayer | None) -> None:
    """Give ``wrapper`` the observability methods (and its judge and cache)."""
    counters = judge.counters

    def cache_clear() -> None:
        """Remove every cached result of this function; ``cache_info()`` starts over."""
        if layer is not None:
            layer.clear()
        counters.cleared()

    def cache_info() -> CacheInfo:
        """``(hits, misses, maxsize, currsize)`` since the last ``cache_clear()``, as
        ``functools.lru_cache`` reports them (``currsize``/``maxsize`` None for disk and
        Redis; 0 without a cache)."""
        if layer is None:
            return counters.cache_info(0, 0)
        store = layer.store
        if isinstance(store, MemoryStore):
            return counters.cache_info(store.maxsize, len(store.data))
        return counters.cache_info(None, None)

    def stats() -> Stats:
        """What happened since decoration: calls, cache hits, attempts, failures, retries,
        successes by fallback value, pauses, cooldowns and seconds waited."""
        snapshot = counters.snapshot()
        rate = learned_rate(judge)
        return snapshot if rate is None else replace(snapshot, learned_rate=rate)

    def cache_delete(*args: Any, **kwargs: Any) -> bool:
        """Remove the cached result of the call ``f(*args, **kwargs)`` (the very key that
        call uses); whether one was there. False without a cache, for a call that is not
        cached, and when the backend fails (reported as a failed lookup is)."""
        if layer is None:
            return False
        key = layer.key(args, kwargs)
        return False if key is None else layer.delete(key)

    def cache_contains(*args: Any, **kwargs: Any) -> bool:
        """Whether a fresh (unexpired) result of the call ``f(*args, **kwargs)`` is cached.
        False without a cache, for a call that is not cached, and when the backend fails
        (reported as a failed lookup is)."""
        if layer is None:
            return False
        key = layer.key(args, kwargs)
        return False if key is None else layer.contains(key)

    wrapper.cache_clear = cache_clear
    wrapper.cache_delete = cache_delete
    wrapper.cache_contains = cache_contains
    wrapper.cache_info = cache_info
    wrapper.stats = stats
    wrapper.__opero_judge__ = judge
    wrapper.__opero_cache__ = layer


def _learning(pacing: object) -> bool:
    if isinstance(pacing, Service):
        return isinstance(pacing.rate_limit, Adaptive)
    return isinstance(pacing, Adaptive)


def learned_rate(judge: Judge) -> float | dict[str, float] | None:
    """What ``stats().learned_rate`` reports: the rate an ``Adaptive`` limit learned, by
    fallback value when each value has its own (the values used so far), else None."""
    pacing = judge.options["rate_limit"]
    if isinstance(pacing, dict):
        if not any(_learning(entry) for entry in pacing.values()):
            return None
        route = judge.route
        assert route is not None
        gates = route.gates()  # the values whose budget exists by now
        rates = {k: getattr(g.limiter, "learned_rate", None) for k, g in gates.items()}
        return {key: float(rate) for key, rate in rates.items() if rate is not None}
    rate = getattr(judge.limiter, "learned_rate", None) if _learning(pacing) else None
    return None if rate is None else float(rate)
