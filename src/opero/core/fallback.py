"""Parameter-based fallback: which values of the ``arg_fallback`` parameter to try."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Fallback"]

Call = tuple[tuple[Any, ...], dict[str, Any]]


class Fallback:
    """Expands one call into one call per fallback value.

    The parameter is found by signature binding, whatever its source (keyword, position or
    the function's default). A ``list`` or ``tuple`` value means "try each element in
    order"; any other value (``str`` included) is a single value and needs no fallback.
    """

    __slots__ = ("name", "param", "signature")

    def __init__(self, func: Callable[..., Any], param: str) -> None:
        signature = inspect.signature(func)
        p = signature.parameters.get(param)
        if p is None or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            accepted = ", ".join(
                n
                for n, q in signature.parameters.items()
                if q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)
            )
            name = getattr(func, "__qualname__", func)
            raise ValueError(
                f"arg_fallback={param!r} is not a parameter of {name!r}; "
                f"its parameters are: {accepted or '(none)'}"
            )
        self.signature = signature
        self.param = param
        self.name = getattr(func, "__qualname__", repr(func))

    def expand(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[object], list[Call]] | None:
        """``(values, calls)`` for a list/tuple value, or None when a single value is given."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        value = bound.arguments.get(self.param)
        if not isinstance(value, list | tuple):
            return None
        if not value:
            raise ValueError(
                f"{self.name}: arg_fallback parameter {self.param!r} got an empty "
                f"{type(value).__name__}; give at least one value"
            )
        calls: list[Call] = []
        for v in value:
            bound.arguments[self.param] = v
            calls.append((bound.args, bound.kwargs))
        return list(value), calls
