"""The mechanisms of the pipeline, one per module: options, keys, cache, single-flight,
retry, fallback, rate limit, timeout, hooks, and the sync/async drivers that run them."""

__all__: list[str] = []
