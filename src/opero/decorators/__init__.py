"""The public decorators."""

__all__: list[str] = []
