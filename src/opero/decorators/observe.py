"""``cache_clear()``, ``cache_info()``, ``stats()``, ``cache_delete()`` and
``cache_contains()`` on every decorated function."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opero.cache.memory import MemoryStore

if TYPE_CHECKING:
    from opero.cache.layer import CacheLayer
    from opero.core.judge import Judge
    from opero.core.stats import CacheInfo, Stats

__all__ = ["attach"]


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
        return counters.snapshot()

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
