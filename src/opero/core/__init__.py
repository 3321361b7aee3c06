"""Pure decisions, no I/O but the injected clock: the retry schedule, the fallback walk,
timeouts, hooks, backend health, and the two drivers that act on them."""

__all__: list[str] = []
