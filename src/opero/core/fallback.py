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
    Each call gets the arguments as the caller gave them with only that parameter replaced:
    defaults of other parameters are not passed explicitly.
    """

    __slots__ = ("index", "name", "param", "parameter", "signature")

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
        self.parameter = p
        positional = [
            n
            for n, q in signature.parameters.items()
            if q.kind in (q.POSITIONAL_ONLY, q.POSITIONAL_OR_KEYWORD)
        ]
        #: where the value stands when given by position (None: keyword-only)
        self.index = positional.index(param) if param in positional else None
        self.name = getattr(func, "__qualname__", repr(func))

    def _find(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, str]:
        index = self.index
        if index is not None and index < len(args):
            return args[index], "args"
        if self.param in kwargs:
            return kwargs[self.param], "kwargs"
        return self.parameter.default, "default"

    def given(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The value the call gives the parameter (one value: not a list of them)."""
        return self._find(args, kwargs)[0]

    def expand(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[list[object], list[Call]] | None:
        """``(values, calls)`` for a list/tuple value, or None when a single value is given."""
        self.signature.bind(*args, **kwargs)  # a call that does not fit raises here
        value, where = self._find(args, kwargs)
        if not isinstance(value, list | tuple):
            return None
        if not value:
            raise ValueError(
                f"{self.name}: arg_fallback parameter {self.param!r} got an empty "
                f"{type(value).__name__}; give at least one value"
            )
        calls: list[Call] = []
        for v in value:
            if where == "args":
                index = self.index
                assert index is not None
                calls.append(((*args[:index], v, *args[index + 1 :]), kwargs))
            elif where == "kwargs" or self.parameter.kind is not self.parameter.POSITIONAL_ONLY:
                calls.append((args, {**kwargs, self.param: v}))
            else:  # a positional-only default: the positions before it must be filled
                bound = self.signature.bind(*args, **kwargs)
                bound.apply_defaults()
                bound.arguments[self.param] = v
                calls.append((bound.args, bound.kwargs))
        return list(value), calls
