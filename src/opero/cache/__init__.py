"""Everything about stored results: call keys, the memory and disk stores, serializers,
single-flight, and the layer that ties them to one decorated function. Other stores (Redis,
in :mod:`opero.backends`) plug in through the :class:`~opero.cache.store.Store` interface."""

__all__: list[str] = []
