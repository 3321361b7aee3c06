"""Optional backends, each in its own folder, reached only through the interfaces of
:mod:`opero.cache.store` (a ``Store``) and :mod:`opero.limits.base` (a ``Limiter``)."""

__all__: list[str] = []
