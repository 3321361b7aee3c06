"""Everything about pacing attempts: the rate limiter and the interface a shared limiter
(Redis, in :mod:`opero.backends`) implements."""

__all__: list[str] = []
