"""The Redis backend (the ``opero[redis]`` extra): client and breaker, the shared store, and
the shared rate limit."""

__all__: list[str] = []
